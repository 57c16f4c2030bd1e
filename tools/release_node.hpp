// powergrad release-node: gives a node back its admin's power settings after PowerGrad's
// plugin was removed from it (or its agent is gone for good), from the saved-caps file the
// node agent keeps in its state folder. Refuses while an agent runs there: a running agent
// is released by taking its node out of powergrad.conf's groups instead. With --plugstack FILE
// it does so for every state folder the plugin's lines there name (and the default one): the
// package's removal runs it so. --forget then removes the folders PowerGrad no longer needs.
#pragma once

namespace powergrad {

// argv: the options after "release-node". Returns the exit status; prints what it did.
int release_node(int argc, char **argv);

}  // namespace powergrad
