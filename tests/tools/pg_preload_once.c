/* Preloaded into the test cluster's daemons after the sanitizer runtimes (tests/e2e/lib.sh,
 * PG_SANITIZE=1): once loaded, it takes LD_PRELOAD out of the daemon's environment, so that
 * the programs the daemon starts (slurmstepd, scripts) do not carry the runtimes. The
 * AddressSanitizer allocator of GCC 12 is not fork-safe in a multithreaded process:
 * slurmstepd forks its tasks while its other threads run, and a child that frees memory
 * before exec waits for ever on an allocator lock another thread held at the fork (seen:
 * exec_task -> free -> SizeClassAllocator64 mutex; the job never ends). slurmstepd loads
 * nothing sanitized (the SPANK plugin is built without sanitizers), so it loses nothing. */
#include <stdlib.h>

__attribute__((constructor)) static void pg_preload_once(void) { unsetenv("LD_PRELOAD"); }
