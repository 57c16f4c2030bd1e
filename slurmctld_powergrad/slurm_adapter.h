/*
 * The controller plugin's only window into slurmctld. slurm_adapter.c is the one file that
 * includes Slurm's internal headers (built against a configured source tree of the
 * installed version); everything else in slurmctld_powergrad/ is ordinary C++ that sees
 * only this plain C interface and is tested without slurmctld.
 */
#ifndef POWERGRAD_SLURM_ADAPTER_H
#define POWERGRAD_SLURM_ADAPTER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A copy of what PowerGrad needs of one job; strings owned by whoever filled it. */
typedef struct pg_job_view {
	uint32_t job_id;
	char *mode;          /* POWERGRAD value from the job's spank env; NULL: not power-aware */
	char *nodes;         /* allocated nodes, hostlist expression */
	char *admin_comment; /* current AdminComment, may be NULL */
	time_t start_time;
	int running;         /* 1 while running, 0 once finished */
} pg_job_view_t;

/*
 * Called by the adapter with slurmctld's job write lock held (job begin/completion
 * hooks, and pg_adapter_apply_comments): must be quick, must not call back into the
 * adapter. Returns a malloc()ed new AdminComment for the job, or NULL to leave it as is.
 */
typedef char *(*pg_comment_fn)(const pg_job_view_t *job, void *arg);

/* Logging through slurmctld's log, prefixed "powergrad: ". */
void pg_adapter_log_info(const char *msg);
void pg_adapter_log_error(const char *msg);
void pg_adapter_log_debug(const char *msg);

/* 1 inside slurmctld (the PrEp plugin is loaded by slurmd too, where it does nothing). */
int pg_adapter_in_slurmctld(void);

/*
 * 1 once slurmctld has its node table and job list (PrEp plugins are loaded before
 * slurmctld reads its configuration and state, and a backup controller has neither until
 * it takes over). Takes the read locks for the check only.
 */
int pg_adapter_controller_ready(void);

/*
 * Sets the function the PrEp hooks call for every power-aware job, under the job write lock:
 * with running=0 at the job's end (epilog_slurmctld, every version), and with running=1 at
 * its start when start_hook is nonzero (prolog_slurmctld; declaring it makes every job pass
 * through CONFIGURING, see prep_p_required in slurm_adapter.c). When the end's comment
 * differs from the one the job had, the job's completion record is queued to slurmdbd again
 * (slurmctld queued it before calling the epilog), so sacct shows the final record. With
 * slurmdbd, a power-aware job that ends before slurmctld sent its start to the database has
 * its start queued too, so its row keeps the job's name. Returns 0.
 */
int pg_adapter_set_job_hooks(pg_comment_fn fn, void *arg, int start_hook);
/* Unsets it; once this returns, no hook is running it. */
void pg_adapter_clear_job_hooks(void);

/*
 * Copies every running job that has a POWERGRAD spank env entry, under the job read lock
 * held only for the copy. *out receives a malloc()ed array of *count views; free it with
 * pg_adapter_free_views(). Returns 0, or -1 if slurmctld's job list is not available.
 */
int pg_adapter_snapshot_power_aware_jobs(pg_job_view_t **out, size_t *count);
void pg_adapter_free_views(pg_job_view_t *views, size_t count);

/*
 * The ids of every job in slurmctld's job list (pending, running, suspended or ended and
 * not yet purged), copied under the job read lock; *running_out receives 1 for a job that
 * is running or suspended, else 0 (NULL: not wanted). Both arrays are malloc()ed (free()
 * them). Returns 0, or -1 if slurmctld's job list is not available.
 */
int pg_adapter_known_job_ids(uint32_t **ids_out, unsigned char **running_out, size_t *count);

/*
 * The id and owner (uid) of every job in slurmctld's job list, copied under the job read
 * lock into two malloc()ed arrays of *count entries (free() them). Returns 0, or -1 if
 * slurmctld's job list is not available.
 */
int pg_adapter_job_owners(uint32_t **ids_out, uint32_t **uids_out, size_t *count);

/*
 * Under the job write lock, for each job id in ids that still exists, calls fn with a view
 * of the job as it is now and stores the comment fn returns. Returns the number updated.
 */
size_t pg_adapter_apply_comments(const uint32_t *ids, size_t count, pg_comment_fn fn,
				 void *arg);

/*
 * slurmctld's configuration, copied under its config read lock: the path of slurm.conf
 * (malloc()ed, NULL if unknown) and SlurmUser's uid.
 */
char *pg_adapter_slurm_conf_path(void);
/* slurm.conf's StateSaveLocation (malloc()ed, NULL if unknown). */
char *pg_adapter_state_save_location(void);
uint32_t pg_adapter_slurm_user_uid(void);
/* 1 when slurm.conf's PrivateData hides jobs from users other than their owners. */
int pg_adapter_private_jobs(void);
/* When slurmctld last read slurm.conf (slurm_conf.last_update): changes with every
 * `scontrol reconfigure` (on versions that re-execute slurmctld instead, the plugin starts
 * anew anyway). */
long long pg_adapter_conf_read_at(void);
/*
 * 1 when uid sees every job whatever PrivateData says: root, SlurmUser, and users with
 * AdminLevel Operator or Admin in Slurm's accounting (slurmctld's own validate_operator).
 */
int pg_adapter_sees_all_jobs(uint32_t uid);

/*
 * The names of the nodes in slurmctld's node table, in its order, copied under the node
 * read lock. *out receives a malloc()ed array of *count malloc()ed strings; free it with
 * pg_adapter_free_names(). Returns 0, or -1 if the node table is not available.
 */
int pg_adapter_node_names(char ***out, size_t *count);
void pg_adapter_free_names(char **names, size_t count);

#ifdef __cplusplus
}
#endif

#endif
