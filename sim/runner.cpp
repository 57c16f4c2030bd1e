#include "sim/runner.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

namespace powergrad::sim {

std::vector<RunResult> run_policies(const ClusterSpec &spec, const std::vector<std::string> &policies,
                                    unsigned threads, const ProgressFn &progress,
                                    double progress_every_s) {
  const std::size_t n = policies.size();
  std::vector<RunResult> results(n);
  std::vector<std::exception_ptr> errors(n);
  const std::unique_ptr<std::atomic<double>[]> done(new std::atomic<double>[n]);
  for (std::size_t i = 0; i < n; ++i) done[i].store(0.0);
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  std::condition_variable finished_cv;
  std::size_t finished = 0;

  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t workers = std::min<std::size_t>(threads, n);
  {
    std::vector<std::thread> pool;
    // Joins on every path out of this block, so no thread outlives the data it uses.
    struct Joiner {
      std::vector<std::thread> &threads;
      ~Joiner() {
        for (std::thread &t : threads)
          if (t.joinable()) t.join();
      }
    } joiner{pool};
    for (std::size_t w = 0; w < workers; ++w) {
      pool.emplace_back([&] {
        for (;;) {
          const std::size_t i = next.fetch_add(1);
          if (i >= n) break;
          try {
            results[i] = simulate(spec, policies[i], &done[i]);
          } catch (...) {
            errors[i] = std::current_exception();  // never let it escape the thread
          }
          done[i].store(1.0);
          std::lock_guard<std::mutex> lock(mutex);
          ++finished;
          finished_cv.notify_all();
        }
      });
    }
    std::unique_lock<std::mutex> lock(mutex);
    const auto period = std::chrono::duration<double>(progress_every_s);
    while (finished < n) {
      if (!finished_cv.wait_for(lock, period, [&] { return finished >= n; }) && progress) {
        double sum = 0.0;
        for (std::size_t i = 0; i < n; ++i) sum += done[i].load();
        progress(sum / static_cast<double>(n));
      }
    }
  }
  for (const std::exception_ptr &e : errors)
    if (e) std::rethrow_exception(e);
  return results;
}

}  // namespace powergrad::sim
