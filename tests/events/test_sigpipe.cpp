// SigpipeGuard (lib/sigpipe.hpp): hiredis I/O on a connection the peer has
// closed raises SIGPIPE, whose default action ends the process. Each case
// runs in a forked child with that default action, writing to a socket whose
// peer is closed (which raises SIGPIPE on every write).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <functional>
#include <thread>

#include "events/sigpipe.hpp"

namespace {

// Exit status of a child running `body` (0 = it returned true), or -signal.
int in_child(const std::function<bool()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::signal(SIGPIPE, SIG_DFL);
    ::_exit(body() ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

// Writes to a socket whose peer is gone: -1 with EPIPE, or SIGPIPE.
bool write_to_closed_peer() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return false;
  ::close(fds[1]);
  const ssize_t n = ::write(fds[0], "x", 1);
  const int error = errno;
  ::close(fds[0]);
  return n == -1 && error == EPIPE;
}

bool sigpipe_pending() {
  sigset_t pending;
  sigemptyset(&pending);
  return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

bool sigpipe_blocked() {
  sigset_t mask;
  sigemptyset(&mask);
  return pthread_sigmask(SIG_BLOCK, nullptr, &mask) == 0 && sigismember(&mask, SIGPIPE) == 1;
}

}  // namespace

TEST_CASE("without a guard the write ends the process (what the guard prevents)") {
  CHECK(in_child(write_to_closed_peer) == -SIGPIPE);
}

TEST_CASE("under a guard the write fails with EPIPE; nothing stays pending; the mask is restored") {
  CHECK(in_child([] {
    bool failed_cleanly = false;
    {
      ordinaut::detail::SigpipeGuard guard;
      failed_cleanly = write_to_closed_peer();
      if (!sigpipe_blocked()) return false;
    }
    return failed_cleanly && !sigpipe_pending() && !sigpipe_blocked();
  }) == 0);
}

TEST_CASE("a SIGPIPE pending before the guard is left for its owner") {
  CHECK(in_child([] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    ::raise(SIGPIPE);  // someone else's, pending while blocked
    {
      ordinaut::detail::SigpipeGuard guard;
      if (!write_to_closed_peer()) return false;
    }
    return sigpipe_pending() && sigpipe_blocked();  // still pending, mask as it was (blocked)
  }) == 0);
}

TEST_CASE("a thread that blocked SIGPIPE for good needs no guard") {
  CHECK(in_child([] {
    bool ok = false;
    std::thread t([&] {
      ordinaut::detail::block_sigpipe_in_this_thread();
      ok = write_to_closed_peer();
      ordinaut::detail::SigpipeGuard guard;  // a no-op here
      ok = ok && write_to_closed_peer() && sigpipe_blocked();
    });
    t.join();
    return ok && !sigpipe_blocked();  // other threads unaffected
  }) == 0);
}
