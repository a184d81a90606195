#include "stream_watcher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <string_view>

namespace ordinaut_server {

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

constexpr std::string_view kKeepaliveComment = ": keepalive\n\n";

}  // namespace

struct StreamWatcher::Stream {
  std::mutex write_mutex;
  BodyWriter* sink = nullptr;  // null once the producer returned; guarded by write_mutex
  int sock = -1;
  bool sse = false;
  std::atomic<bool> closed{false};
  std::atomic<std::int64_t> last_write_ns{0};
};

namespace {

class WatchedSink final : public ordinaut::StreamSink {
 public:
  WatchedSink(StreamWatcher::Stream& stream, const std::atomic<bool>& closing)
      : stream_(stream), closing_(closing) {}

  bool write(std::string_view data) override {
    if (!is_open()) return false;
    if (data.empty()) return true;  // an empty chunk would end the chunked body
    std::lock_guard lock(stream_.write_mutex);
    if (!stream_.sink->write(data)) {
      stream_.closed.store(true);
      return false;
    }
    stream_.last_write_ns.store(now_ns(), std::memory_order_relaxed);
    return true;
  }

  bool is_open() const override { return !stream_.closed.load() && !closing_.load(); }

 private:
  StreamWatcher::Stream& stream_;
  const std::atomic<bool>& closing_;
};

}  // namespace

StreamWatcher::StreamWatcher(std::chrono::milliseconds keepalive)
    : keepalive_(keepalive), wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

StreamWatcher::~StreamWatcher() {
  quit_.store(true);
  wake();
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void StreamWatcher::wake() const {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void StreamWatcher::close_all() { closing_.store(true); }

std::size_t StreamWatcher::open_streams() const {
  std::lock_guard lock(mutex_);
  return streams_.size();
}

void StreamWatcher::add(const std::shared_ptr<Stream>& stream) {
  {
    std::lock_guard lock(mutex_);
    streams_.push_back(stream);
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  }
  wake();
}

void StreamWatcher::remove(const std::shared_ptr<Stream>& stream) {
  {
    std::lock_guard lock(stream->write_mutex);
    stream->sink = nullptr;
  }
  {
    std::lock_guard lock(mutex_);
    std::erase(streams_, stream);
  }
  wake();  // so that the watcher stops polling this socket before it is closed and reused
}

void StreamWatcher::run(const ordinaut::StreamProducer& producer, BodyWriter& sink, int sock, bool sse) {
  auto stream = std::make_shared<Stream>();
  stream->sink = &sink;
  stream->sock = sock;
  stream->sse = sse;
  stream->last_write_ns.store(now_ns());
  add(stream);
  WatchedSink adapter(*stream, closing_);
  struct Remove {
    StreamWatcher& watcher;
    const std::shared_ptr<Stream>& stream;
    ~Remove() { watcher.remove(stream); }
  } remove_on_exit{*this, stream};
  producer(adapter);
}

void StreamWatcher::loop() {
  std::vector<std::shared_ptr<Stream>> streams;
  std::vector<pollfd> fds;
  const std::int64_t interval_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(keepalive_).count();
  while (!quit_.load()) {
    {
      std::lock_guard lock(mutex_);
      streams = streams_;
    }
    fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    std::int64_t next_due = -1;  // ns until the next keep-alive comment is due
    const std::int64_t now = now_ns();
    for (const auto& s : streams) {
      // A stream whose peer closed is polled no more: POLLRDHUP would stay set.
      fds.push_back(pollfd{s->closed.load() ? -1 : s->sock, POLLRDHUP, 0});
      if (interval_ns > 0 && s->sse && !s->closed.load()) {
        std::int64_t due = s->last_write_ns.load(std::memory_order_relaxed) + interval_ns - now;
        next_due = next_due < 0 ? std::max<std::int64_t>(due, 0) : std::min(next_due, std::max<std::int64_t>(due, 0));
      }
    }
    // At least 50 ms between rounds: a comment skipped because its socket was
    // full (or the producer was writing) is retried without spinning.
    const int timeout_ms = next_due < 0 ? -1 : std::max(50, static_cast<int>((next_due + 999'999) / 1'000'000));
    int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) {
      std::uint64_t value = 0;
      [[maybe_unused]] auto r = ::read(wake_fd_, &value, sizeof value);
    }
    for (std::size_t i = 0; i < streams.size(); ++i) {
      if (fds[i + 1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) streams[i]->closed.store(true);
    }
    if (interval_ns <= 0) continue;
    const std::int64_t after = now_ns();
    for (const auto& s : streams) {
      if (!s->sse || s->closed.load() || after - s->last_write_ns.load(std::memory_order_relaxed) < interval_ns) {
        continue;
      }
      // Only when the socket can take the bytes now: a client that does not
      // read must not stall the comments of every other stream.
      pollfd p{s->sock, POLLOUT, 0};
      std::unique_lock lock(s->write_mutex, std::try_to_lock);
      if (!lock.owns_lock() || s->sink == nullptr) continue;  // the producer is writing, or done
      if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT)) continue;
      if (s->sink->write(kKeepaliveComment)) {
        s->last_write_ns.store(after, std::memory_order_relaxed);
      } else {
        s->closed.store(true);
      }
    }
  }
}

}  // namespace ordinaut_server
