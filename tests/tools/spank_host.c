/* A stand-in for the Slurm process that loads a SPANK plugin (no Slurm daemon): loads the
 * plugin with dlopen as Slurm does, provides the spank_* and slurm_* functions the plugin
 * calls (logging to stdout as "LEVEL: message"), and runs the hooks of one context.
 *
 *   spank_host [-D] PLUGIN.so slurmd WAIT_FILE [ARG...]
 *       slurm_spank_init in the slurmd context, waits (at most 30 s) until WAIT_FILE
 *       exists (e.g. the node agent's socket), then slurm_spank_slurmd_exit; a WAIT_FILE of
 *       "-" waits for nothing
 *   spank_host PLUGIN.so local [ARG...]
 *       slurm_spank_init and slurm_spank_init_post_opt in srun's context
 *
 * -D is skipped here; the plugin reads it from this process's command line as slurmd's "stay in
 * the foreground" (without it, Slurm before 24.11 makes the plugin wait for slurmd to
 * daemonize before it starts the agent).
 *
 * Prints "init rc=N" and "exit rc=N" and the loaded shared objects ("mapped: NAME") of
 * interest. Exit status 0 when the hooks returned 0. */
#include <dlfcn.h>
#include <slurm/spank.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static spank_context_t context = S_CTX_LOCAL;

static void say(const char *level, const char *fmt, va_list ap) {
  printf("%s: ", level);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
}
void slurm_info(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("info", fmt, ap);
  va_end(ap);
}
void slurm_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("error", fmt, ap);
  va_end(ap);
}
void slurm_debug(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("debug", fmt, ap);
  va_end(ap);
}
void slurm_verbose(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("verbose", fmt, ap);
  va_end(ap);
}
void slurm_debug2(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("debug2", fmt, ap);
  va_end(ap);
}
void slurm_debug3(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("debug3", fmt, ap);
  va_end(ap);
}
void slurm_spank_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("log", fmt, ap);
  va_end(ap);
}

spank_context_t spank_context(void) { return context; }
const char *spank_strerror(spank_err_t err) { return err == ESPANK_SUCCESS ? "success" : "error"; }
spank_err_t spank_option_register(spank_t sp, struct spank_option *opt) {
  (void)sp;
  printf("option registered: --%s\n", opt->name);
  return ESPANK_SUCCESS;
}
spank_err_t spank_get_item(spank_t sp, spank_item_t item, ...) {
  (void)sp;
  (void)item;
  return ESPANK_NOT_AVAIL;
}
spank_err_t spank_getenv(spank_t sp, const char *var, char *buf, int len) {
  (void)sp;
  (void)var;
  (void)buf;
  (void)len;
  return ESPANK_ENV_NOEXIST;
}
spank_err_t spank_setenv(spank_t sp, const char *var, const char *val, int overwrite) {
  (void)sp;
  (void)var;
  (void)val;
  (void)overwrite;
  return ESPANK_SUCCESS;
}
spank_err_t spank_job_control_setenv(spank_t sp, const char *name, const char *value,
                                     int overwrite) {
  (void)sp;
  (void)overwrite;
  printf("job control env: %s=%s\n", name, value);
  return ESPANK_SUCCESS;
}

typedef int (*hook_fn)(spank_t, int, char **);

static int call(void *h, const char *name, int ac, char **av) {
  hook_fn f = (hook_fn)dlsym(h, name);
  if (!f) return 0;
  return f(NULL, ac, av);
}

static void print_mapped(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096], last[4096] = "";
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    const char *slash = strrchr(line, '/');
    if (!slash || strstr(line, ".so") == NULL) continue;
    if (strcmp(slash, last) == 0) continue;
    snprintf(last, sizeof last, "%s", slash);
    printf("mapped: %s", slash + 1);
  }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-D") == 0) {
    --argc;
    ++argv;
  }
  if (argc < 3) {
    fprintf(stderr,
            "usage: spank_host [-D] PLUGIN.so slurmd WAIT_FILE [ARG...] | local [ARG...]\n");
    return 2;
  }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    printf("cannot load %s: %s\n", argv[1], dlerror());
    return 1;
  }
  int rc_init, rc_exit = 0;
  if (strcmp(argv[2], "slurmd") == 0 && argc >= 4) {
    context = S_CTX_SLURMD;
    rc_init = call(h, "slurm_spank_init", argc - 4, argv + 4);
    printf("init rc=%d\n", rc_init);
    if (strcmp(argv[3], "-") != 0) {
      struct stat st;
      int i;
      for (i = 0; i < 3000 && stat(argv[3], &st) != 0; ++i) usleep(10000);
      printf("%s %s\n", argv[3], stat(argv[3], &st) == 0 ? "appeared" : "never appeared");
    }
    print_mapped();
    rc_exit = call(h, "slurm_spank_slurmd_exit", argc - 4, argv + 4);
    printf("exit rc=%d\n", rc_exit);
  } else if (strcmp(argv[2], "local") == 0) {
    context = S_CTX_LOCAL;
    rc_init = call(h, "slurm_spank_init", argc - 3, argv + 3);
    printf("init rc=%d\n", rc_init);
    rc_exit = call(h, "slurm_spank_init_post_opt", argc - 3, argv + 3);
    printf("init_post_opt rc=%d\n", rc_exit);
    print_mapped();
  } else {
    fprintf(stderr, "spank_host: unknown context '%s'\n", argv[2]);
    return 2;
  }
  return rc_init == 0 && rc_exit == 0 ? 0 : 1;
}
