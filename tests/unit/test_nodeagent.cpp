// Node agent's Slurm-free parts: step events, the step registry, and the root-only socket.
// Standard headers before check.h: its macros (fail, ...) break <fstream> and <filesystem>.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <atomic>
#include <chrono>
#include <string>
#include <vector>

// Check last among system headers.
#include <check.h>

#include "hardware/sysfs_file.hpp"
#include "nodeagent/agent.hpp"
#include "nodeagent/agent_socket.hpp"
#include "nodeagent/step_channel.hpp"
#include "nodeagent/step_event.hpp"
#include "nodeagent/step_registry.hpp"
#include "tests/unit/check_strings.hpp"
#include "tests/unit/check_util.hpp"

using namespace powergrad;

namespace {

StepEvent start(uint32_t job, const std::string &step, pid_t pid, JobMode mode) {
  StepEvent e;
  e.op = StepOp::task_start;
  e.job_id = job;
  e.step = step;
  e.pid = pid;
  e.mode = mode;
  return e;
}

StepEvent exit_of(uint32_t job, const std::string &step, pid_t pid) {
  StepEvent e;
  e.op = StepOp::task_exit;
  e.job_id = job;
  e.step = step;
  e.pid = pid;
  return e;
}

// How long a test waits for an answer: long, so that a busy machine (CI runs the suites
// beside other builds) only makes a test slower, never failed (as pgtest::wait_until).
constexpr int kAnswerMs = 10000;

using pgtest::wait_until;

std::string temp_dir() {
  char tmpl[] = "/tmp/pg-nodeagent-XXXXXX";
  const char *d = mkdtemp(tmpl);
  ck_assert_ptr_nonnull(d);
  return d;
}

}  // namespace

START_TEST(event_round_trip) {
  for (const StepEvent &e : {start(12, "0", 345, JobMode::latency),
                             start(7, "batch", 99, JobMode::off), exit_of(12, "0", 345)}) {
    const std::string text = format_step_event(e);
    StepEventParse p = parse_step_event(text);
    ck_assert_msg(p.event.has_value(), "%s: %s", text.c_str(), p.error.c_str());
    ck_assert_std_str_eq(format_step_event(*p.event), text);
  }
  StepEvent end;
  end.op = StepOp::step_end;
  end.job_id = 5;
  end.step = "extern";
  ck_assert_std_str_eq(format_step_event(end), "v=1 op=step_end job=5 step=extern");
  ck_assert(parse_step_event("v=1 op=step_end job=5 step=extern").event.has_value());
}
END_TEST

START_TEST(event_errors_name_the_problem) {
  struct {
    const char *text;
    const char *error;
  } cases[] = {
      {"op=task_exit job=1 step=0 pid=5", "no version"},
      {"v=2 op=task_exit job=1 step=0 pid=5", "unsupported version v=2"},
      {"v=1 op=fly job=1 step=0 pid=5", "unknown op 'fly'"},
      {"v=1 op=task_exit job=0 step=0 pid=5", "bad job id '0'"},
      {"v=1 op=task_exit job=99999999999 step=0 pid=5", "bad job id"},
      {"v=1 op=task_exit job=1 step=x pid=5", "bad step 'x'"},
      {"v=1 op=task_exit job=1 step=0 pid=1", "bad pid '1'"},
      {"v=1 op=task_exit job=1 step=0 pid=-4", "bad pid"},
      {"v=1 op=task_start job=1 step=0 pid=5 mode=turbo", "bad mode 'turbo'"},
      {"v=1 op=task_exit job=1 step=0 pid=5 mode=latency", "takes no mode"},
      {"v=1 op=step_end job=1 step=0 pid=5", "takes no pid"},
      {"v=1 op=task_exit job=1 job=2 step=0 pid=5", "'job' given twice"},
      {"v=1 op=task_exit job=1 step=0 pid=5 uid=0", "unknown field 'uid'"},
      {"v=1 op=task_exit job= step=0 pid=5", "'job' is empty"},
      {"v=1 garbage", "'garbage' is not key=value"},
  };
  for (const auto &c : cases) {
    StepEventParse p = parse_step_event(c.text);
    ck_assert_msg(!p.event, "accepted: %s", c.text);
    ck_assert_msg(p.error.find(c.error) != std::string::npos, "%s -> '%s', want '%s'", c.text,
                  p.error.c_str(), c.error);
  }
  ck_assert(!parse_step_event(std::string(600, 'a')).event);
}
END_TEST

START_TEST(registry_tracks_tasks_and_steps) {
  StepRegistry r;
  ck_assert_std_str_eq(r.apply(start(1, "0", 100, JobMode::latency), 1.0), "");
  ck_assert_std_str_eq(r.apply(start(1, "0", 101, JobMode::latency), 1.0), "");
  ck_assert_std_str_eq(r.apply(start(1, "0", 100, JobMode::latency), 1.5), "");  // twice: harmless
  ck_assert_std_str_eq(r.apply(start(2, "batch", 200, JobMode::off), 2.0), "");
  ck_assert_uint_eq(r.size(), 2);
  ck_assert(r.has_power_aware_step());
  ck_assert_uint_eq(r.steps()[0].pids.size(), 2);
  r.apply(exit_of(1, "0", 100), 3.0);
  ck_assert_uint_eq(r.size(), 2);
  r.apply(exit_of(1, "0", 101), 3.0);  // last task gone: step gone
  ck_assert_uint_eq(r.size(), 1);
  ck_assert(!r.has_power_aware_step());                        // only the plain batch step is left
  ck_assert_std_str_eq(r.apply(exit_of(9, "0", 5), 3.0), "");  // unknown: not an error
  StepEvent end;
  end.op = StepOp::step_end;
  end.job_id = 2;
  end.step = "batch";
  r.apply(end, 4.0);
  ck_assert_uint_eq(r.size(), 0);
}
END_TEST

START_TEST(registry_reaps_dead_pids_and_is_bounded) {
  StepRegistry r(RegistryLimits{2, 2});
  r.apply(start(1, "0", 100, JobMode::latency), 0);
  r.apply(start(1, "0", 101, JobMode::latency), 0);
  ck_assert(r.apply(start(1, "0", 102, JobMode::latency), 0).find("too many tasks") !=
            std::string::npos);
  r.apply(start(2, "0", 200, JobMode::throughput), 0);
  ck_assert(r.apply(start(3, "0", 300, JobMode::latency), 0).find("registry full") !=
            std::string::npos);
  // The stepd of job 2 crashed: its pid is dead. Job 1 lost one task.
  auto dropped = r.reap([](pid_t p) { return p == 100; });
  ck_assert_uint_eq(dropped.size(), 1);
  ck_assert_std_str_eq(dropped[0], "2.0");
  ck_assert_uint_eq(r.size(), 1);
  ck_assert_uint_eq(r.steps()[0].pids.size(), 1);
}
END_TEST

START_TEST(channel_delivers_and_answers) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/agent.sock";
  StepChannelServer server = StepChannelServer::open(path, getuid());
  ck_assert_msg(server.ok(), "%s", server.error().c_str());
  struct stat st;
  ck_assert_int_eq(lstat(path.c_str(), &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0600);
  const pid_t child = fork();
  if (child == 0) {
    const std::string err =
        send_step_event(path, start(42, "0", getpid(), JobMode::throughput), kAnswerMs);
    const std::string bad = send_step_event(path, exit_of(42, "0", 1), kAnswerMs);
    _exit(err.empty() && bad.find("bad pid") != std::string::npos ? 0 : 1);
  }
  std::vector<ReceivedStepEvent> got;
  wait_until([&] {
    for (auto &r : server.drain(500)) got.push_back(r);
    return got.size() >= 2;
  });
  int status = 0;
  waitpid(child, &status, 0);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ck_assert_uint_eq(got.size(), 2);
  ck_assert(got[0].parse.event.has_value());
  ck_assert_uint_eq(got[0].parse.event->job_id, 42);
  ck_assert_int_eq(got[0].parse.event->pid, child);
  ck_assert_int_eq(got[0].peer_pid, child);
  ck_assert(!got[1].parse.event);
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(channel_refuses_other_uids) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/agent.sock";
  // The server only talks to a uid that is not ours: we are "the user's task".
  StepChannelServer server = StepChannelServer::open(path, getuid() + 1);
  ck_assert(server.ok());
  const pid_t child = fork();
  if (child == 0) {
    const std::string err =
        send_step_event(path, start(42, "0", getpid(), JobMode::latency), kAnswerMs);
    _exit(err.find("not allowed") != std::string::npos ? 0 : 1);
  }
  std::vector<ReceivedStepEvent> got;
  wait_until([&] {
    got = server.drain(500);
    return !got.empty();
  });
  int status = 0;
  waitpid(child, &status, 0);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ck_assert_uint_eq(got.size(), 1);
  ck_assert(!got[0].parse.event);
  ck_assert(got[0].parse.error.find("refused connection from uid") != std::string::npos);
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(channel_refuses_oversize_messages) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/agent.sock";
  StepChannelServer server = StepChannelServer::open(path, getuid());
  ck_assert(server.ok());
  int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ck_assert_int_eq(connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  const std::string big = "v=1 op=task_exit job=1 step=0 pid=5 " + std::string(700, 'x');
  ck_assert_int_eq(send(fd, big.data(), big.size(), 0), static_cast<ssize_t>(big.size()));
  auto got = server.drain(500);
  ck_assert_uint_eq(got.size(), 1);
  ck_assert(!got[0].parse.event);
  ck_assert(got[0].parse.error.find("over the limit") != std::string::npos);
  char reply[64] = {0};
  ck_assert_int_gt(recv(fd, reply, sizeof reply - 1, 0), 0);
  ck_assert(std::string(reply).find("error:") == 0);
  close(fd);
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(channel_never_steals_a_live_socket) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/agent.sock";
  StepChannelServer first = StepChannelServer::open(path, getuid());
  ck_assert(first.ok());
  StepChannelServer second = StepChannelServer::open(path, getuid());
  ck_assert(!second.ok());
  ck_assert_contains(second.error(), "in use by a running node agent");
  // The first one still gets the events.
  const pid_t child = fork();
  if (child == 0) {
    const std::string e =
        send_step_event(path, start(5, "0", getpid(), JobMode::latency), kAnswerMs);
    _exit(e.empty() ? 0 : 1);
  }
  std::vector<ReceivedStepEvent> got;
  wait_until([&] {
    got = first.drain(500);
    return !got.empty();
  });
  int status = 0;
  waitpid(child, &status, 0);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // The second open's probe left without a word: no event for it, just the child's.
  ck_assert_uint_eq(got.size(), 1);
  ck_assert(got[0].parse.event.has_value());
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(channel_replaces_a_stale_socket) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/agent.sock";
  { StepChannelServer gone = StepChannelServer::open(path, getuid()); }
  // A crashed agent leaves its socket file: bind a socket and close it without unlinking.
  int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ck_assert_int_eq(bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
  close(fd);
  StepChannelServer s = StepChannelServer::open(path, getuid());
  ck_assert_msg(s.ok(), "%s", s.error().c_str());
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(channel_open_errors) {
  ck_assert(!StepChannelServer::open(std::string(200, 'x')).ok());
  const std::string dir = temp_dir();
  const std::string file = dir + "/plain";
  FILE *f = fopen(file.c_str(), "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  StepChannelServer s = StepChannelServer::open(file, getuid());
  ck_assert(!s.ok());
  ck_assert(s.error().find("is not a socket") != std::string::npos);
  ck_assert(send_step_event(dir + "/none.sock", start(1, "0", 5, JobMode::latency), 100)
                .find("connect") != std::string::npos);
  unlink(file.c_str());
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(private_dir_created_and_checked) {
  const std::string dir = temp_dir();
  const std::string state = dir + "/a/b/state";
  ck_assert(open_state_dir(state).ok());
  struct stat st;
  ck_assert_int_eq(stat(state.c_str(), &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0700);
  ck_assert_int_eq(stat((dir + "/a").c_str(), &st), 0);
  ck_assert_int_eq(st.st_mode & 0777, 0755);
  ck_assert(open_state_dir(state).ok());  // again: fine
  chmod(state.c_str(), 0770);
  ck_assert_contains(open_state_dir(state).message(), "is writable by its group");
  chmod(state.c_str(), 0700);
  if (geteuid() == 0) {
    ck_assert_int_eq(chown(state.c_str(), 65534, 65534), 0);
    ck_assert_contains(open_state_dir(state).message(), "is owned by uid 65534");
    ck_assert_int_eq(chown(state.c_str(), 0, 0), 0);
  }
  ck_assert_contains(open_state_dir("relative/dir").message(), "not an absolute path");
  const std::string file = dir + "/file";
  std::ofstream(file) << "x";
  ck_assert_contains(open_state_dir(file).message(), "is not a folder");
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(pid_alive_reads_procfs) {
  ck_assert(pid_alive("/proc", getpid()));
  const std::string root = temp_dir();
  std::filesystem::create_directories(root + "/100");
  std::ofstream(root + "/100/stat") << "100 (a b) c) R 1 100";
  std::filesystem::create_directories(root + "/101");
  std::ofstream(root + "/101/stat") << "101 (x) Z 1 101";
  ck_assert(pid_alive(root, 100));
  ck_assert(!pid_alive(root, 101));
  ck_assert(!pid_alive(root, 102));
  std::filesystem::remove_all(root);
}
END_TEST

START_TEST(agent_registers_and_reaps_steps) {
  const std::string dir = temp_dir();
  std::mutex mu;
  std::vector<std::string> lines;
  AgentConfig cfg;
  cfg.node_name = "n1";
  cfg.state_dir = dir + "/state";
  cfg.period_s = 0.05;
  NodeAgent agent(cfg, [&](AgentLogLevel, const std::string &m) {
    std::lock_guard<std::mutex> g(mu);
    lines.push_back(m);
  });
  ck_assert_std_str_eq(agent.start(), "");
  ck_assert(agent.running());
  // A "task" that lives until we kill it, registered by a "stepd" (this process).
  const pid_t task = fork();
  if (task == 0) {
    pause();
    _exit(0);
  }
  ck_assert_std_str_eq(send_step_event(step_socket_path(cfg.state_dir),
                                       start(77, "0", task, JobMode::latency), kAnswerMs),
                       "");
  // The agent answers "ok" once the event is received and valid, and applies it right after.
  wait_until([&] { return !agent.steps().empty(); });
  ck_assert_uint_eq(agent.steps().size(), 1);
  ck_assert_int_eq(*agent.steps()[0].pids.begin(), task);
  kill(task, SIGKILL);
  waitpid(task, nullptr, 0);
  wait_until([&] { return agent.steps().empty(); });
  ck_assert_uint_eq(agent.steps().size(), 0);
  // The period that reaped the step counts itself once it has logged the reap: waited for.
  ck_assert(wait_until([&] { return agent.periods() > 0; }));
  agent.stop();
  ck_assert(!agent.running());
  agent.stop();  // idempotent
  struct stat st;
  ck_assert_int_ne(lstat(step_socket_path(cfg.state_dir).c_str(), &st), 0);  // socket removed
  std::lock_guard<std::mutex> g(mu);
  bool registered = false, reaped = false;
  for (const auto &l : lines) {
    registered |= l.find("job 77.0 task pid") != std::string::npos;
    reaped |= l.find("job 77.0 unregistered: its processes are gone") != std::string::npos;
  }
  ck_assert(registered && reaped);
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(registry_file_round_trip_and_errors) {
  StepRegistry r;
  r.apply(start(5, "0", 100, JobMode::latency), 0);
  r.apply(start(5, "0", 101, JobMode::latency), 0);
  r.apply(start(6, "batch", 200, JobMode::off), 0);
  // 101 is gone: left out.
  const std::string text = StepRegistry::serialize(r.steps(), [](pid_t p) {
    return p == 101 ? std::nullopt : std::optional<std::uint64_t>(1000 + p);
  });
  const RegistryFileParse back = parse_registry_file(text);
  ck_assert_std_str_eq(back.error, "");
  ck_assert_uint_eq(back.tasks.size(), 2);
  ck_assert_uint_eq(back.tasks[0].start.job_id, 5);
  ck_assert_int_eq(back.tasks[0].start.pid, 100);
  ck_assert_uint_eq(back.tasks[0].start_ticks, 1100);
  ck_assert(back.tasks[0].start.mode == JobMode::latency);
  ck_assert_std_str_eq(back.tasks[1].start.step, "batch");
  ck_assert(back.tasks[1].start.mode == JobMode::off);
  const struct {
    const char *text;
    const char *error;
  } bad[] = {
      {"", "line 0: empty file"},
      {"powergrad-steps 2\nend\n", "line 1: not a registry file of version 1"},
      {"powergrad-steps 1\n", "no end line"},
      {"powergrad-steps 1\nend", "line 2: no newline at the end"},
      {"powergrad-steps 1\nend\nx\n", "line 3: text after the end line"},
      {"powergrad-steps 1\n12x v=1 op=task_start job=1 step=0 pid=5 mode=off\nend\n",
       "line 2: start time '12x' is not a number"},
      {"powergrad-steps 1\n12 v=1 op=task_exit job=1 step=0 pid=5\nend\n",
       "line 2: not a task_start event"},
      {"powergrad-steps 1\n12 v=1 op=task_start job=1 step=0 pid=5 mode=fast\nend\n", "line 2: "},
  };
  for (const auto &c : bad) {
    const RegistryFileParse p = parse_registry_file(c.text);
    ck_assert_msg(p.error.find(c.error) != std::string::npos, "'%s' -> '%s', want '%s'", c.text,
                  p.error.c_str(), c.error);
    ck_assert(p.tasks.empty());
  }
}
END_TEST

START_TEST(pid_start_ticks_reads_procfs) {
  const auto self = pid_start_ticks("/proc", getpid());
  ck_assert(self.has_value());
  ck_assert(pid_start_ticks("/proc", getpid()) == self);
  const std::string root = temp_dir();
  std::filesystem::create_directories(root + "/7");
  std::ofstream(root + "/7/stat")
      << "7 (a (b) c) S 1 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
  ck_assert(pid_start_ticks(root, 7) == std::optional<std::uint64_t>(123456));
  std::filesystem::create_directories(root + "/8");
  std::ofstream(root + "/8/stat") << "8 (z) Z 1 8 8 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
  ck_assert(!pid_start_ticks(root, 8));
  ck_assert(!pid_start_ticks(root, 9));
  std::filesystem::remove_all(root);
}
END_TEST

// slurmd restarts while its jobs run: the new agent finds the running steps in its state
// folder (same PID, same start time), not the ones that ended or whose PID was reused.
START_TEST(agent_finds_running_steps_after_restart) {
  const std::string dir = temp_dir();
  AgentConfig cfg;
  cfg.node_name = "n1";
  cfg.state_dir = dir + "/state";
  cfg.period_s = 0.05;
  std::mutex mu;
  std::vector<std::string> lines;
  auto logger = [&](AgentLogLevel, const std::string &m) {
    std::lock_guard<std::mutex> g(mu);
    lines.push_back(m);
  };
  const pid_t task = fork();
  if (task == 0) {
    pause();
    _exit(0);
  }
  const pid_t short_task = fork();
  if (short_task == 0) {
    pause();
    _exit(0);
  }
  {
    NodeAgent agent(cfg, logger);
    ck_assert_std_str_eq(agent.start(), "");
    ck_assert_std_str_eq(send_step_event(step_socket_path(cfg.state_dir),
                                         start(88, "0", task, JobMode::latency), kAnswerMs),
                         "");
    ck_assert_std_str_eq(send_step_event(step_socket_path(cfg.state_dir),
                                         start(89, "0", short_task, JobMode::off), kAnswerMs),
                         "");
    // Written at the next period after the change.
    ck_assert(wait_until([&] {
      auto t = powergrad::hw::read_small_file(steps_file_path(cfg.state_dir));
      return t.ok() && t.value().find("job=89") != std::string::npos;
    }));
    agent.stop();
  }
  kill(short_task, SIGKILL);
  waitpid(short_task, nullptr, 0);
  NodeAgent again(cfg, logger);
  ck_assert_std_str_eq(again.start(), "");
  wait_until([&] { return !again.steps().empty(); });
  const std::vector<RegisteredStep> steps = again.steps();
  ck_assert_uint_eq(steps.size(), 1);
  ck_assert_uint_eq(steps[0].job_id, 88);
  ck_assert(steps[0].mode == JobMode::latency);
  ck_assert_int_eq(*steps[0].pids.begin(), task);
  again.stop();
  kill(task, SIGKILL);
  waitpid(task, nullptr, 0);
  {
    std::lock_guard<std::mutex> g(mu);
    bool found = false;
    for (const auto &l : lines)
      found |= l.find(
                   "running steps of an earlier agent on n1: 88.0 (1 task(s)); 1 task(s) had "
                   "ended; steered again from now") != std::string::npos;
    ck_assert(found);
  }
  std::filesystem::remove_all(dir);
}
END_TEST

START_TEST(agent_start_refuses_bad_state_dir) {
  const std::string dir = temp_dir();
  chmod(dir.c_str(), 0777);
  NodeAgent agent({"n1", dir, 1.0, "/proc"}, [](AgentLogLevel, const std::string &) {});
  ck_assert_contains(agent.start(), "is writable by others");
  ck_assert(!agent.running());
  std::filesystem::remove_all(dir);
}
END_TEST

// Issue 11: state_dir=/tmp/x/%n with /tmp/x writable by users. Only the last folder was
// checked: a user could swap it and root would write and remove files where they chose.
START_TEST(agent_refuses_a_state_dir_under_a_user_writable_folder) {
  const std::string dir = temp_dir();
  ck_assert_int_eq(mkdir((dir + "/x").c_str(), 0777), 0);
  ck_assert_int_eq(chmod((dir + "/x").c_str(), 0777), 0);
  NodeAgent agent({"n1", dir + "/x/n1", 1.0, "/proc"}, [](AgentLogLevel, const std::string &) {});
  const std::string err = agent.start();
  ck_assert_contains(err, "state folder '" + dir + "/x/n1' refused: '" + dir +
                              "/x' is writable by others (mode 0777, no sticky bit)");
  ck_assert(!agent.running());
  // A symlink (in a safe folder) to a folder users may write: refused where it leads.
  ck_assert_int_eq(symlink((dir + "/x").c_str(), (dir + "/link").c_str()), 0);
  NodeAgent linked({"n1", dir + "/link/n1", 1.0, "/proc"},
                   [](AgentLogLevel, const std::string &) {});
  ck_assert_contains(linked.start(), "'" + dir + "/x' is writable by others");
  ck_assert(!linked.running());
  std::filesystem::remove_all(dir);
}
END_TEST

// The state folder swapped for a symlink to another folder after the agent started: the
// running steps are still written in the folder that was checked (through its descriptor).
START_TEST(agent_writes_through_the_opened_state_folder) {
  const std::string dir = temp_dir();
  ck_assert_int_eq(mkdir((dir + "/p").c_str(), 0755), 0);
  ck_assert_int_eq(mkdir((dir + "/decoy").c_str(), 0700), 0);
  AgentConfig cfg;
  cfg.node_name = "n1";
  cfg.state_dir = dir + "/p/state";
  cfg.period_s = 0.05;
  NodeAgent agent(cfg, [](AgentLogLevel, const std::string &) {});
  ck_assert_std_str_eq(agent.start(), "");
  ck_assert_int_eq(rename((dir + "/p/state").c_str(), (dir + "/p/moved").c_str()), 0);
  ck_assert_int_eq(symlink((dir + "/decoy").c_str(), (dir + "/p/state").c_str()), 0);
  const pid_t task = fork();
  if (task == 0) {
    pause();
    _exit(0);
  }
  ck_assert_std_str_eq(send_step_event(dir + "/p/moved/agent.sock",
                                       start(91, "0", task, JobMode::latency), kAnswerMs),
                       "");
  ck_assert(wait_until([&] {
    auto t = powergrad::hw::read_small_file(dir + "/p/moved/steps");
    return t.ok() && t.value().find("job=91") != std::string::npos;
  }));
  struct stat st;
  ck_assert_int_ne(lstat((dir + "/decoy/steps").c_str(), &st), 0);
  agent.stop();
  // The socket it removes at its stop is its own, in the folder it checked.
  ck_assert_int_ne(lstat((dir + "/p/moved/agent.sock").c_str(), &st), 0);
  kill(task, SIGKILL);
  waitpid(task, nullptr, 0);
  std::filesystem::remove_all(dir);
}
END_TEST

// slurmstepd's side: it talks to a socket only when the folders, the socket file and the
// peer that listens are root's (or slurmd's uid's).
START_TEST(stepd_refuses_unsafe_agent_sockets) {
  const std::string dir = temp_dir();
  chmod(dir.c_str(), 0755);
  // An honest agent: fine.
  AgentConfig cfg;
  cfg.node_name = "n1";
  cfg.state_dir = dir + "/ok";
  cfg.period_s = 0.05;
  NodeAgent agent(cfg, [](AgentLogLevel, const std::string &) {});
  ck_assert_std_str_eq(agent.start(), "");
  ck_assert_std_str_eq(send_step_event_checked(cfg.state_dir, exit_of(5, "0", 1234), kAnswerMs),
                       "");
  agent.stop();
  // A socket in a folder under one users may write.
  ck_assert_int_eq(mkdir((dir + "/open").c_str(), 0777), 0);
  ck_assert_int_eq(chmod((dir + "/open").c_str(), 0777), 0);
  ck_assert_int_eq(mkdir((dir + "/open/state").c_str(), 0700), 0);
  StepChannelServer planted = StepChannelServer::open(dir + "/open/state/agent.sock", 0);
  ck_assert(planted.ok());
  ck_assert_contains(send_step_event_checked(dir + "/open/state", exit_of(5, "0", 1234)),
                     "'" + dir + "/open' is writable by others");
  // A socket file others may write, or that is no socket.
  ck_assert_int_eq(mkdir((dir + "/s").c_str(), 0700), 0);
  StepChannelServer loose = StepChannelServer::open(dir + "/s/agent.sock", 0);
  ck_assert(loose.ok());
  ck_assert_int_eq(chmod((dir + "/s/agent.sock").c_str(), 0666), 0);
  ck_assert_contains(send_step_event_checked(dir + "/s", exit_of(5, "0", 1234)),
                     "agent.sock' is writable by group or others (mode 0666)");
  ck_assert_int_eq(mkdir((dir + "/f").c_str(), 0700), 0);
  std::ofstream(dir + "/f/agent.sock") << "x";
  ck_assert_contains(send_step_event_checked(dir + "/f", exit_of(5, "0", 1234)), "is not a socket");
  ck_assert_contains(send_step_event_checked(dir + "/none", exit_of(5, "0", 1234)),
                     "state folder " + dir + "/none refused");
  if (geteuid() == 0) {
    ck_assert_int_eq(chmod((dir + "/s/agent.sock").c_str(), 0600), 0);
    ck_assert_int_eq(chown((dir + "/s/agent.sock").c_str(), 65534, 65534), 0);
    ck_assert_contains(send_step_event_checked(dir + "/s", exit_of(5, "0", 1234)),
                       "agent.sock' is owned by uid 65534, not by root or slurmd's uid");
  }
  std::filesystem::remove_all(dir);
}
END_TEST

// Issue 11: slurmstepd connected to a socket a user served and believed its "ok". The peer
// that listens must be root (or slurmd's uid), whatever the socket file looks like.
START_TEST(stepd_refuses_an_agent_of_another_uid) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/agent.sock";
  int ready[2];
  ck_assert_int_eq(pipe(ready), 0);
  const pid_t server = fork();
  if (server == 0) {
    // Bound as root (a root-owned 0600 socket file), listening as uid 65534.
    close(ready[0]);
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    const mode_t old = umask(0177);
    if (bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) _exit(2);
    umask(old);
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(3);
    if (listen(fd, 4) != 0) _exit(4);
    (void)!write(ready[1], "r", 1);
    for (;;) {
      const int c = accept(fd, nullptr, nullptr);
      if (c < 0) _exit(5);
      char buf[512];
      (void)!recv(c, buf, sizeof buf, 0);
      (void)!send(c, "ok", 2, MSG_NOSIGNAL);
      close(c);
    }
  }
  close(ready[1]);
  char r = 0;
  const bool up = read(ready[0], &r, 1) == 1;
  close(ready[0]);
  if (geteuid() != 0) {
    // Not root: no other uid to listen as; the child could not switch.
    kill(server, SIGKILL);
    waitpid(server, nullptr, 0);
    std::printf("note: not root: the socket of another uid is not tried\n");
    std::filesystem::remove_all(dir);
    return;
  }
  ck_assert(up);
  const std::string err = send_step_event(path, exit_of(5, "0", 1234), kAnswerMs);
  ck_assert_contains(err, "is served by uid 65534");
  ck_assert_contains(err, "not by root or slurmd's uid");
  ck_assert_contains(send_step_event_checked(dir, exit_of(5, "0", 1234)), "is served by uid 65534");
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
  std::filesystem::remove_all(dir);
}
END_TEST

// A task's registration is answered at once by the step channel's own thread, and the step
// is in the registry when the answer arrives, whatever the control loop is doing. Here the
// control thread is held inside its first log line (as a slow period would hold it) until
// the test lets it go: the stepd gets "ok" while it is held. (Before, the control thread
// answered between periods: "no answer from the node agent within 200 ms".) How fast the
// answer comes is not asserted (a busy machine may be slow); that it came while the control
// loop could not have sent it is.
START_TEST(registration_is_answered_while_the_control_loop_is_busy) {
  const std::string dir = temp_dir();
  AgentConfig cfg;
  cfg.node_name = "n1";
  cfg.state_dir = dir + "/state";
  cfg.period_s = 0.05;
  std::atomic<bool> held{false}, release{false};
  NodeAgent agent(cfg, [&](AgentLogLevel, const std::string &m) {
    if (m.find("node agent started on") != std::string::npos) {
      held = true;
      // Held until released (at most a minute, so that a failed assertion cannot hang stop()).
      wait_until([&] { return release.load(); }, 60.0);
      held = false;
    }
  });
  ck_assert_std_str_eq(agent.start(), "");
  ck_assert(wait_until([&] { return held.load(); }));
  const pid_t task = fork();
  if (task == 0) {
    pause();
    _exit(0);
  }
  const std::string err = send_step_event(step_socket_path(cfg.state_dir),
                                          start(91, "0", task, JobMode::latency), kAnswerMs);
  const bool still_held = held.load();
  const std::size_t steps = agent.steps().size();
  const pid_t first = steps ? *agent.steps()[0].pids.begin() : -1;
  // A refusal by the registry reaches the stepd too: a malformed step is refused with the
  // reason, also while the control thread is held.
  StepEvent bad = start(92, "0", task, JobMode::latency);
  bad.step = "x/y";
  const std::string refused = send_step_event(step_socket_path(cfg.state_dir), bad, kAnswerMs);
  const bool held_after_refusal = held.load();
  release = true;
  kill(task, SIGKILL);
  waitpid(task, nullptr, 0);
  agent.stop();
  ck_assert_msg(err.empty(), "registration not answered: %s", err.c_str());
  ck_assert_msg(still_held, "answered only once the control thread was let go");
  ck_assert_uint_eq(steps, 1);  // applied before the answer
  ck_assert_int_eq(first, task);
  ck_assert_std_str_ne(refused, "");
  ck_assert(held_after_refusal);
  std::filesystem::remove_all(dir);
}
END_TEST

int main() {
  Suite *s = suite_create("nodeagent");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);  // waits are for conditions (20 s each at most); a busy disk is slow
  tcase_add_test(tc, event_round_trip);
  tcase_add_test(tc, event_errors_name_the_problem);
  tcase_add_test(tc, registry_tracks_tasks_and_steps);
  tcase_add_test(tc, registry_reaps_dead_pids_and_is_bounded);
  tcase_add_test(tc, channel_delivers_and_answers);
  tcase_add_test(tc, channel_refuses_other_uids);
  tcase_add_test(tc, channel_refuses_oversize_messages);
  tcase_add_test(tc, channel_never_steals_a_live_socket);
  tcase_add_test(tc, channel_replaces_a_stale_socket);
  tcase_add_test(tc, channel_open_errors);
  tcase_add_test(tc, private_dir_created_and_checked);
  tcase_add_test(tc, pid_alive_reads_procfs);
  tcase_add_test(tc, agent_registers_and_reaps_steps);
  tcase_add_test(tc, agent_start_refuses_bad_state_dir);
  tcase_add_test(tc, agent_refuses_a_state_dir_under_a_user_writable_folder);
  tcase_add_test(tc, agent_writes_through_the_opened_state_folder);
  tcase_add_test(tc, stepd_refuses_unsafe_agent_sockets);
  tcase_add_test(tc, stepd_refuses_an_agent_of_another_uid);
  tcase_add_test(tc, registry_file_round_trip_and_errors);
  tcase_add_test(tc, pid_start_ticks_reads_procfs);
  tcase_add_test(tc, agent_finds_running_steps_after_restart);
  tcase_add_test(tc, registration_is_answered_while_the_control_loop_is_busy);
  suite_add_tcase(s, tc);
  return pgtest::run_suite(s);
}
