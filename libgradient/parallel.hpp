// Tasks on a few threads, for the cluster controller's work over 100,000 nodes: the caller's
// thread and up to threads - 1 more, started for the call and joined before it returns (no
// pool to outlive a slurmctld plugin). Callers keep their results independent of the number
// of threads: a task's work may depend on its task index, never on which worker ran it.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace powergrad {

// Runs f(task, worker) for every task in [0, tasks) on up to `threads` threads: the calling
// thread is worker 0, the others 1, 2, ... (so that a caller may keep scratch memory per
// worker). Tasks are handed out in order from a shared counter. Returns once every task has
// run; an exception a task threw is rethrown then (the one of the lowest task). A thread that
// cannot be started (the process at its limit) leaves its tasks to the others.
template <typename F>
void parallel_tasks(std::size_t tasks, std::size_t threads, F &&f) {
  if (threads > tasks) threads = tasks;
  if (threads <= 1) {
    std::exception_ptr first;
    for (std::size_t t = 0; t < tasks; ++t) {
      try {
        f(t, std::size_t{0});
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(tasks);
  const auto work = [&](std::size_t worker) {
    for (std::size_t t = next.fetch_add(1); t < tasks; t = next.fetch_add(1)) {
      try {
        f(t, worker);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(threads - 1);
  for (std::size_t w = 1; w < threads; ++w) {
    try {
      workers.emplace_back(work, w);
    } catch (...) {  // std::system_error: the tasks are left to the threads there are
      break;
    }
  }
  work(0);
  for (std::thread &t : workers) t.join();
  for (const std::exception_ptr &e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace powergrad
