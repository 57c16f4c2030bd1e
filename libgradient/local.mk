# rules for libgradient/
