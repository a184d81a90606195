// Keeping SIGPIPE from ending the process during socket writes (internal).
//
// hiredis writes with write(2). On a connection the peer has reset (a Redis
// server killed with clients' bytes unread, a proxy dropping it), write(2)
// raises SIGPIPE, whose default action ends the process. A library must not
// change process-wide signal handling, so:
//  - a bus thread that runs no user code blocks SIGPIPE for good
//    (block_sigpipe_in_this_thread); threads that run handlers must not, since
//    threads and processes a handler starts would inherit the mask;
//  - any other thread (publishers, subscription workers) holds a SigpipeGuard
//    around hiredis I/O:
//    SIGPIPE is blocked in that thread only, one raised meanwhile is consumed,
//    and the thread's mask is restored. The write then fails with EPIPE,
//    which hiredis reports as an I/O error like any other.
#pragma once

#include <cerrno>
#include <csignal>
#include <ctime>

#include <pthread.h>

namespace ordinaut::detail {

inline thread_local bool tls_sigpipe_blocked = false;

/// Blocks SIGPIPE in the calling thread for the rest of its life.
inline void block_sigpipe_in_this_thread() noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) == 0) tls_sigpipe_blocked = true;
}

/// Blocks SIGPIPE in the calling thread for its scope (see above).
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept {
    if (tls_sigpipe_blocked) return;
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    // One pending from before (someone else's) is left alone.
    was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    active_ = pthread_sigmask(SIG_BLOCK, &set_, &old_) == 0;
  }
  ~SigpipeGuard() {
    if (!active_) return;
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        while (sigtimedwait(&set_, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t set_{};
  sigset_t old_{};
  bool was_pending_ = false;
  bool active_ = false;
};

}  // namespace ordinaut::detail
