#include "connection_server.hpp"

#include <arpa/inet.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <string_view>

#include <fmt/format.h>

namespace ordinaut_server {

namespace {

constexpr std::uint64_t kWakeTag = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kLingerMs = 1000;      // how long a closing connection is drained
constexpr std::int64_t kHousekeepingMs = 50;  // deadline granularity
constexpr std::int64_t kBlockedMs = 5;        // a worker busy this long no longer counts as running
constexpr int kIdleWorker = 0, kBusyWorker = 1, kBlockedWorker = 2;
constexpr std::uint32_t kEvents = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::size_t kStreamStack = 4u << 20;  // sanitizers need far bigger frames
#else
constexpr std::size_t kStreamStack = 256u << 10;
#endif

std::int64_t now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::uint64_t tag(int fd, std::uint32_t gen) { return (static_cast<std::uint64_t>(gen) << 32) | static_cast<std::uint32_t>(fd); }

int poll_one(int fd, short events, std::chrono::milliseconds timeout) {
  pollfd p{fd, events, 0};
  for (;;) {
    int n = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(timeout.count(), 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

// Writes every byte of `iov`: tries the socket first, waits up to `timeout`
// whenever it is full. False when the client is gone or too slow.
bool send_all(int fd, iovec* iov, int count, std::chrono::milliseconds timeout) {
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
      if (poll_one(fd, POLLOUT, timeout) <= 0) return false;
      continue;
    }
    auto done = static_cast<std::size_t>(n);
    while (count > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + done;
      iov->iov_len -= done;
    }
  }
  return true;
}

bool send_all(int fd, std::string_view a, std::string_view b, std::chrono::milliseconds timeout) {
  iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
  return send_all(fd, iov, b.empty() ? 1 : 2, timeout);
}

std::string peer_address(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {};
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, buf, sizeof buf);
  } else if (addr.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

bool header_value_ok(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool header_name_ok(std::string_view n) {
  return !n.empty() && n.find_first_of(std::string_view(" \t\r\n:\0", 6)) == std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

// Headers the connection layer writes itself.
bool is_framing_header(std::string_view name) {
  return iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") || iequals(name, "Connection") ||
         iequals(name, "Content-Type") || iequals(name, "Keep-Alive");
}

void append_number(std::string& out, std::size_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

// Status line and headers of `response`, without the framing headers.
void append_head(std::string& out, const ordinaut::Response& response) {
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<std::size_t>(response.status));
  out.push_back(' ');
  out.append(ordinaut::status_reason(response.status));
  out.append("\r\n");
  for (const auto& [name, value] : response.headers.list()) {
    // Values holding CR or LF are dropped: no header injection.
    if (is_framing_header(name) || !header_name_ok(name) || !header_value_ok(value)) continue;
    out.append(name).append(": ").append(value).append("\r\n");
  }
}

// The chunked (HTTP/1.1) or raw (HTTP/1.0) body of a streamed response.
class StreamBody final : public BodyWriter {
 public:
  StreamBody(int fd, bool chunked, std::chrono::milliseconds timeout) : fd_(fd), chunked_(chunked), timeout_(timeout) {}
  bool write(std::string_view data) override {
    if (failed_) return false;
    if (data.empty()) return true;  // an empty chunk would end the body
    if (!chunked_) return ok(send_all(fd_, data, {}, timeout_));
    char size_line[24];
    auto r = std::to_chars(size_line, size_line + 20, data.size(), 16);
    *r.ptr++ = '\r';
    *r.ptr++ = '\n';
    iovec iov[3] = {{size_line, static_cast<std::size_t>(r.ptr - size_line)},
                    {const_cast<char*>(data.data()), data.size()},
                    {const_cast<char*>("\r\n"), 2}};
    return ok(send_all(fd_, iov, 3, timeout_));
  }
  bool finish() {
    if (failed_ || !chunked_) return !failed_;
    return ok(send_all(fd_, "0\r\n\r\n", {}, timeout_));
  }

 private:
  bool ok(bool sent) {
    if (!sent) failed_ = true;
    return sent;
  }
  int fd_;
  bool chunked_;
  std::chrono::milliseconds timeout_;
  bool failed_ = false;
};

}  // namespace

struct ConnectionServer::Conn {
  Conn(int fd_, std::size_t max_body) : fd(fd_), reader(max_body) {}
  const int fd;
  std::uint32_t gen = 0;
  RequestReader reader;
  std::string remote;
  bool lingering = false;
  bool pipelined = false;  // bytes of a next request came with the current one
  RequestReader::Phase seen = RequestReader::Phase::idle;
  std::int64_t phase_started_ms = 0;  // first byte of the head, or end of the head
  std::int64_t last_read_ms = 0;
  std::int64_t linger_until_ms = 0;
};

struct ConnectionServer::Worker {
  std::atomic<int> state{kIdleWorker};
  std::atomic<std::int64_t> busy_since_ms{0};
};

struct ConnectionServer::Slot {
  std::mutex mutex;
  Conn* conn = nullptr;                         // guarded by mutex
  std::uint32_t gen = 0;                        // guarded by mutex
  std::atomic<bool> armed{false};               // in epoll, owned by no thread
  std::atomic<bool> idle{false};                // armed between requests
  std::atomic<std::int64_t> deadline_ms{kNever};
};

ConnectionServer::ConnectionServer(ConnectionOptions options, ConnectionHooks hooks, StreamWatcher& watcher)
    : options_(std::move(options)), hooks_(std::move(hooks)), watcher_(watcher) {
  // Every connection costs a descriptor: allow as many as the hard limit.
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    if (lim.rlim_cur < lim.rlim_max) {
      rlimit raised = lim;
      raised.rlim_cur = lim.rlim_max;
      if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
    }
    max_files_ = lim.rlim_cur == RLIM_INFINITY ? (1u << 20) : static_cast<std::size_t>(lim.rlim_cur);
  } else {
    max_files_ = 1024;
  }
  max_files_ = std::min<std::size_t>(max_files_, 1u << 22);
  chunk_count_ = max_files_ / kChunk + 1;
  chunks_ = std::make_unique<std::atomic<Slot*>[]>(chunk_count_);
  for (std::size_t i = 0; i < chunk_count_; ++i) chunks_[i].store(nullptr);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

ConnectionServer::~ConnectionServer() {
  quit_.store(true);
  {
    std::lock_guard lock(state_mutex_);
  }
  state_cv_.notify_all();
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  if (housekeeper_.joinable()) housekeeper_.join();
  for (std::size_t i = 0; i < chunk_count_; ++i) {
    Slot* chunk = chunks_[i].load();
    if (chunk == nullptr) continue;
    for (std::size_t j = 0; j < kChunk; ++j) {
      if (chunk[j].conn != nullptr) {
        ::close(chunk[j].conn->fd);
        delete chunk[j].conn;
      }
    }
    delete[] chunk;
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  ::close(epoll_fd_);
  ::close(wake_fd_);
}

ConnectionServer::Slot* ConnectionServer::slot_of(int fd) const noexcept {
  const auto i = static_cast<std::size_t>(fd);
  if (fd < 0 || i / kChunk >= chunk_count_) return nullptr;
  Slot* chunk = chunks_[i / kChunk].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : &chunk[i % kChunk];
}

ConnectionServer::Slot* ConnectionServer::make_slot(int fd) {
  const auto i = static_cast<std::size_t>(fd);
  if (fd < 0 || i / kChunk >= chunk_count_) return nullptr;
  std::lock_guard lock(chunk_mutex_);
  Slot* chunk = chunks_[i / kChunk].load(std::memory_order_acquire);
  if (chunk == nullptr) {
    chunk = new Slot[kChunk];
    chunks_[i / kChunk].store(chunk, std::memory_order_release);
  }
  return &chunk[i % kChunk];
}

int ConnectionServer::bind(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    errno = EADDRNOTAVAIL;
    return -1;
  }
  int saved = 0;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (a->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &yes, sizeof yes);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 4096) == 0) {
      listen_fd_ = fd;
      break;
    }
    saved = errno;
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (listen_fd_ < 0) {
    errno = saved;
    return -1;
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

bool ConnectionServer::run() {
  run_limit_ = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  for (int i = 0; i < options_.threads; ++i) worker_states_.push_back(std::make_unique<Worker>());
  for (int i = 0; i < options_.threads; ++i) {
    workers_.emplace_back([this, w = worker_states_[static_cast<std::size_t>(i)].get()] { worker_loop(*w); });
  }
  housekeeper_ = std::thread([this] { housekeeping_loop(); });
  accept_loop();
  {
    // Wait for every connection and stream to end (the signal thread decides
    // how long that may take).
    std::unique_lock lock(state_mutex_);
    state_cv_.wait(lock, [&] {
      return !stopping_.load() || (connections_.load() == 0 && stream_threads_.load() == 0);
    });
  }
  quit_.store(true);
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  {
    std::lock_guard lock(run_mutex_);
  }
  run_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  state_cv_.notify_all();
  housekeeper_.join();
  return stopping_.load();
}

void ConnectionServer::accept_loop() {
  std::int64_t last_warning = 0;
  int listener = -1;
  {
    std::lock_guard lock(listen_mutex_);
    listener = listen_fd_;
  }
  while (!stopping_.load()) {
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      add_connection(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
    if (stopping_.load()) break;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      if (now_ms() - last_warning > 10000 && hooks_.error) {
        last_warning = now_ms();
        hooks_.error("accept_failed", fmt::format("cannot accept connections: {} ({} open; limit {} files)",
                                                  std::strerror(errno), connections_.load(), max_files_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (hooks_.error) hooks_.error("accept_failed", fmt::format("the listener failed: {}", std::strerror(errno)));
    break;
  }
  std::lock_guard lock(listen_mutex_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void ConnectionServer::add_connection(int fd) {
  Slot* slot = make_slot(fd);
  if (slot == nullptr) {
    ::close(fd);
    return;
  }
  int yes = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  auto* c = new Conn(fd, options_.max_body);
  c->remote = peer_address(fd);
  connections_.fetch_add(1);
  std::lock_guard lock(slot->mutex);
  c->gen = ++slot->gen;
  slot->conn = c;
  slot->idle.store(true);
  slot->deadline_ms.store(now_ms() + options_.keep_alive_timeout.count());
  slot->armed.store(true);
  epoll_event ev{};
  ev.events = kEvents;
  ev.data.u64 = tag(fd, c->gen);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) close_locked(*slot);
}

// At most run_limit_ (the number of cores) workers run at once: more would only
// preempt each other in the middle of requests and stretch the latency tail.
// A worker whose handler has been busy for kBlockedMs (asleep, waiting on I/O)
// gives up its turn to a waiting worker; it takes a turn again when it is done.
void ConnectionServer::acquire_turn() {
  std::unique_lock lock(run_mutex_);
  run_cv_.wait(lock, [&] { return running_ < run_limit_ || quit_.load(); });
  ++running_;
}

void ConnectionServer::release_turn() {
  {
    std::lock_guard lock(run_mutex_);
    --running_;
  }
  run_cv_.notify_one();
}

void ConnectionServer::release_blocked_turns(std::int64_t now) {
  for (auto& w : worker_states_) {
    const std::int64_t since = w->busy_since_ms.load(std::memory_order_relaxed);
    if (since == 0 || now - since < kBlockedMs) continue;
    int busy = kBusyWorker;
    if (w->state.compare_exchange_strong(busy, kBlockedWorker)) release_turn();
  }
}

void ConnectionServer::worker_loop(Worker& me) {
  auto scratch = std::make_unique<char[]>(kReadChunk);
  epoll_event ev{};
  acquire_turn();
  while (!quit_.load()) {
    int n = ::epoll_wait(epoll_fd_, &ev, 1, -1);
    if (n <= 0) continue;
    if (ev.data.u64 == kWakeTag) continue;
    const int fd = static_cast<int>(ev.data.u64 & 0xffffffffu);
    const auto gen = static_cast<std::uint32_t>(ev.data.u64 >> 32);
    Slot* slot = slot_of(fd);
    if (slot == nullptr) continue;
    Conn* c = nullptr;
    {
      std::lock_guard lock(slot->mutex);
      if (slot->conn == nullptr || slot->gen != gen || !slot->armed.load()) continue;  // stale event
      slot->armed.store(false);
      c = slot->conn;
    }
    me.busy_since_ms.store(now_ms(), std::memory_order_relaxed);
    me.state.store(kBusyWorker);
    serve(*c, scratch.get(), kReadChunk);
    me.busy_since_ms.store(0, std::memory_order_relaxed);
    int busy = kBusyWorker;
    if (!me.state.compare_exchange_strong(busy, kIdleWorker)) {  // blocked: its turn went to another worker
      me.state.store(kIdleWorker);
      acquire_turn();
    }
  }
  release_turn();
}

void ConnectionServer::serve(Conn& c, char* scratch, std::size_t scratch_size) {
  for (;;) {
    ssize_t n = ::recv(c.fd, scratch, scratch_size, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (c.lingering && now_ms() >= c.linger_until_ms) break;
      rearm(c);
      return;
    }
    if (n <= 0) break;  // the client closed (or failed): nothing left to answer
    if (c.lingering) {  // drained and dropped, for at most kLingerMs however fast it comes
      if (now_ms() >= c.linger_until_ms) break;
      continue;
    }
    c.last_read_ms = now_ms();
    switch (process(c, scratch, static_cast<std::size_t>(n))) {
      case Served::closed:
      case Served::handed_off:
        return;
      case Served::rearm:
        break;
    }
    // A short read drained the socket: wait in epoll rather than try again.
    if (static_cast<std::size_t>(n) < scratch_size && !c.lingering) {
      rearm(c);
      return;
    }
  }
  close_connection(c);
}

ConnectionServer::Served ConnectionServer::process(Conn& c, const char* data, std::size_t size) {
  std::size_t off = 0;
  do {
    off += c.reader.feed(data + off, size - off);
    const auto phase = c.reader.phase();
    if (phase == RequestReader::Phase::failed) return send_error(c, c.reader.error());
    if (phase != c.seen) {  // a head began, or a body
      c.seen = phase;
      c.phase_started_ms = c.last_read_ms;
    }
    if (phase == RequestReader::Phase::body && c.reader.wants_continue()) {
      c.reader.continue_sent();
      if (!send_all(c.fd, "HTTP/1.1 100 Continue\r\n\r\n", {}, options_.write_timeout)) {
        close_connection(c);
        return Served::closed;
      }
    }
    if (phase != RequestReader::Phase::done) continue;
    const bool keep_alive = c.reader.keep_alive();
    const bool http10 = c.reader.http10();
    ordinaut::Request request = c.reader.take();
    c.seen = RequestReader::Phase::idle;
    request.remote_addr = c.remote;
    c.pipelined = off < size;
    const Served served = respond(c, request, keep_alive, http10);
    if (served != Served::rearm || c.lingering) return served;
  } while (off < size);
  return Served::rearm;
}

ConnectionServer::Served ConnectionServer::respond(Conn& c, ordinaut::Request& request, bool keep_alive,
                                                   bool http10) {
  const bool head_only = request.method == "HEAD";
  ordinaut::Response response;
  try {
    response = hooks_.handle(request);
  } catch (const std::exception& e) {
    if (hooks_.error) hooks_.error("server_failed", fmt::format("{} {}: {}", request.method, request.path, e.what()));
    response = ordinaut::Response::error(500, "internal_error", "the server failed to handle the request");
  } catch (...) {
    if (hooks_.error) hooks_.error("server_failed", fmt::format("{} {}: unknown exception", request.method, request.path));
    response = ordinaut::Response::error(500, "internal_error", "the server failed to handle the request");
  }
  const bool close = !keep_alive || stopping_.load();
  thread_local std::string head;
  head.clear();
  append_head(head, response);
  std::string_view content_type;
  for (const auto& [name, value] : response.headers.list()) {
    if (iequals(name, "Content-Type") && header_value_ok(value)) {
      content_type = value;
      break;
    }
  }
  if (response.stream && !head_only) return start_stream(c, response, close, http10, head);
  if (response.stream) {
    head.append("Content-Type: ").append(content_type.empty() ? "text/event-stream" : content_type).append("\r\n");
    head.append("Transfer-Encoding: chunked\r\n");
  } else {
    const bool no_body = response.status == 204 || response.status == 304 || response.status < 200;
    if (!no_body && (!response.body.empty() || !content_type.empty())) {
      head.append("Content-Type: ")
          .append(content_type.empty() ? std::string_view("application/octet-stream") : content_type)
          .append("\r\n");
    }
    if (!no_body) {
      head.append("Content-Length: ");
      append_number(head, response.body.size());
      head.append("\r\n");
    }
  }
  if (close) {
    head.append("Connection: close\r\n");
  } else if (http10) {
    head.append("Connection: keep-alive\r\n");
  }
  head.append("\r\n");
  const bool with_body = !head_only && !response.stream && response.status != 204 && response.status != 304;
  if (!send_all(c.fd, head, with_body ? std::string_view(response.body) : std::string_view(), options_.write_timeout)) {
    close_connection(c);
    return Served::closed;
  }
  if (head.capacity() > 64 * 1024) std::string().swap(head);
  return close ? linger(c) : Served::rearm;
}

ConnectionServer::Served ConnectionServer::start_stream(Conn& c, ordinaut::Response& response, bool close,
                                                        bool http10, std::string& head) {
  std::string content_type = "text/event-stream";
  for (const auto& [name, value] : response.headers.list()) {
    if (iequals(name, "Content-Type") && header_value_ok(value)) content_type = value;
  }
  // HTTP/1.0 has no chunked encoding: the body ends when the connection does.
  const bool chunked = !http10;
  const bool reusable = chunked && !close && !c.pipelined;
  head.append("Content-Type: ").append(content_type).append("\r\n");
  if (chunked) head.append("Transfer-Encoding: chunked\r\n");
  if (!reusable) head.append("Connection: close\r\n");
  head.append("\r\n");
  if (!send_all(c.fd, head, {}, options_.write_timeout)) {
    close_connection(c);
    return Served::closed;
  }
  struct Job {
    ConnectionServer* server;
    Conn* conn;
    ordinaut::StreamProducer producer;
    bool sse;
    bool chunked;
    bool reusable;
  };
  auto* job = new Job{this, &c, std::move(response.stream),
                      std::string_view(content_type).starts_with("text/event-stream"), chunked, reusable};
  stream_threads_.fetch_add(1);
  pthread_attr_t attr;
  ::pthread_attr_init(&attr);
  ::pthread_attr_setstacksize(&attr, kStreamStack);
  ::pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  const int rc = ::pthread_create(
      &thread, &attr,
      [](void* arg) -> void* {
        std::unique_ptr<Job> owned(static_cast<Job*>(arg));
        Job* const work = owned.get();
        ConnectionServer& self = *work->server;
        Conn& conn = *work->conn;
        StreamBody body(conn.fd, work->chunked, self.options_.write_timeout);
        try {
          self.watcher_.run(work->producer, body, conn.fd, work->sse);
        } catch (...) {  // the host already catches what producers throw
        }
        const bool finished = body.finish();
        work->producer = nullptr;  // release what the producer holds before the connection moves on
        self.finish_stream(conn, finished && work->reusable);
        {
          std::lock_guard lock(self.state_mutex_);
          self.stream_threads_.fetch_sub(1);
        }
        self.state_cv_.notify_all();
        return nullptr;
      },
      job);
  ::pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete job;
    stream_threads_.fetch_sub(1);
    if (hooks_.error) hooks_.error("stream_failed", fmt::format("cannot start a stream thread: {}", std::strerror(rc)));
    close_connection(c);
    return Served::closed;
  }
  return Served::handed_off;
}

void ConnectionServer::finish_stream(Conn& c, bool reusable) {
  if ((!reusable || stopping_.load() || c.reader.buffered() > 0) && linger(c) == Served::closed) return;
  rearm(c);
}

ConnectionServer::Served ConnectionServer::send_error(Conn& c, const RequestError& error) {
  if (hooks_.rejected) hooks_.rejected(error, c.remote);
  const ordinaut::Response r = ordinaut::Response::error(error.status, error.code, error.message, error.details_json);
  thread_local std::string head;
  head.clear();
  append_head(head, r);
  head.append("Content-Type: application/json\r\nContent-Length: ");
  append_number(head, r.body.size());
  head.append("\r\nConnection: close\r\n\r\n");
  if (!send_all(c.fd, head, r.body, options_.write_timeout)) {
    close_connection(c);
    return Served::closed;
  }
  return linger(c);
}

// Closes our side and drains what the client still sends for a moment, so
// that it reads our last answer instead of a reset.
ConnectionServer::Served ConnectionServer::linger(Conn& c) {
  if (::shutdown(c.fd, SHUT_WR) != 0) {
    close_connection(c);
    return Served::closed;
  }
  c.lingering = true;
  c.linger_until_ms = now_ms() + kLingerMs;
  return Served::rearm;
}

void ConnectionServer::rearm(Conn& c) {
  Slot* slot = slot_of(c.fd);
  const auto phase = c.reader.phase();
  const bool idle = !c.lingering && phase == RequestReader::Phase::idle;
  if (idle && stopping_.load()) {
    close_connection(c);
    return;
  }
  if (idle) c.reader.trim();
  std::int64_t deadline = kNever;
  const std::int64_t now = now_ms();
  if (c.lingering) {
    deadline = c.linger_until_ms;
  } else if (idle) {
    deadline = now + options_.keep_alive_timeout.count();
  } else {
    const auto whole = phase == RequestReader::Phase::head ? options_.header_timeout : options_.body_timeout;
    deadline = std::min(c.phase_started_ms + whole.count(), c.last_read_ms + options_.read_timeout.count());
  }
  std::lock_guard lock(slot->mutex);
  slot->deadline_ms.store(deadline);
  slot->idle.store(idle);
  slot->armed.store(true);
  epoll_event ev{};
  ev.events = kEvents;
  ev.data.u64 = tag(c.fd, c.gen);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev) != 0) close_locked(*slot);
}

void ConnectionServer::close_connection(Conn& c) {
  Slot* slot = slot_of(c.fd);
  std::lock_guard lock(slot->mutex);
  close_locked(*slot);
}

void ConnectionServer::close_locked(Slot& slot) {
  Conn* c = slot.conn;
  if (c == nullptr) return;
  slot.conn = nullptr;
  slot.armed.store(false);
  slot.deadline_ms.store(kNever);
  ++slot.gen;  // events still in flight for this connection are stale now
  ::close(c->fd);
  delete c;
  closed_since_trim_.fetch_add(1, std::memory_order_relaxed);
  connection_closed();
}

void ConnectionServer::connection_closed() {
  if (connections_.fetch_sub(1) == 1 && stopping_.load()) {
    { std::lock_guard lock(state_mutex_); }
    state_cv_.notify_all();
  }
}

// Called by the housekeeper with the slot locked and the connection armed
// (owned by no thread).
void ConnectionServer::expire_locked(Slot& slot, std::int64_t now) {
  Conn& c = *slot.conn;
  if (c.lingering || slot.idle.load()) {
    close_locked(slot);
    return;
  }
  const bool head = c.reader.phase() == RequestReader::Phase::head;
  const bool whole = now >= c.phase_started_ms + (head ? options_.header_timeout : options_.body_timeout).count();
  RequestError error;
  error.status = 408;
  error.code = "request_timeout";
  error.message = whole ? fmt::format("the request {} did not arrive within {} ms", head ? "head" : "body",
                                      (head ? options_.header_timeout : options_.body_timeout).count())
                        : fmt::format("no request bytes arrived for {} ms", options_.read_timeout.count());
  error.details_json = fmt::format(R"({{"phase":"{}","timeout_ms":{}}})", head ? "head" : "body",
                                   (whole ? (head ? options_.header_timeout : options_.body_timeout)
                                          : options_.read_timeout)
                                       .count());
  if (hooks_.rejected) hooks_.rejected(error, c.remote);
  const ordinaut::Response r = ordinaut::Response::error(408, error.code, error.message, error.details_json);
  std::string head_text;
  append_head(head_text, r);
  head_text += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                           r.body.size());
  head_text += r.body;
  // Best effort, never waiting: the housekeeper serves every connection.
  [[maybe_unused]] auto n = ::send(c.fd, head_text.data(), head_text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (::shutdown(c.fd, SHUT_WR) != 0) {
    close_locked(slot);
    return;
  }
  c.lingering = true;
  c.linger_until_ms = now + kLingerMs;
  slot.deadline_ms.store(c.linger_until_ms);
}

void ConnectionServer::housekeeping_loop() {
  std::int64_t last_trim = now_ms();
  std::int64_t last_sweep = 0;
  std::int64_t last_busy = 0;
  while (!quit_.load()) {
    {
      // Every kBlockedMs while workers are busy, to hand on their turns.
      const std::int64_t tick = now_ms() - last_busy < 1000 ? kBlockedMs : kHousekeepingMs;
      std::unique_lock lock(state_mutex_);
      state_cv_.wait_for(lock, std::chrono::milliseconds(tick));
    }
    if (quit_.load()) break;
    const std::int64_t now = now_ms();
    for (auto& w : worker_states_) {
      if (w->busy_since_ms.load(std::memory_order_relaxed) != 0) last_busy = now;
    }
    release_blocked_turns(now);
    if (now - last_sweep < kHousekeepingMs && !stopping_.load()) continue;
    last_sweep = now;
    const bool stopping = stopping_.load();
    const bool sweep_idle = stopping;
    for (std::size_t i = 0; i < chunk_count_; ++i) {
      Slot* chunk = chunks_[i].load(std::memory_order_acquire);
      if (chunk == nullptr) continue;
      for (std::size_t j = 0; j < kChunk; ++j) {
        Slot& slot = chunk[j];
        if (!slot.armed.load(std::memory_order_relaxed)) continue;
        const bool due = slot.deadline_ms.load(std::memory_order_relaxed) <= now;
        if (!due && !(sweep_idle && slot.idle.load(std::memory_order_relaxed))) continue;
        std::lock_guard lock(slot.mutex);
        if (slot.conn == nullptr || !slot.armed.load()) continue;
        if (due) {
          expire_locked(slot, now);
        } else if (slot.idle.load()) {
          close_locked(slot);  // shutdown: idle connections close at once
        }
      }
    }
    // Memory of a burst of connections goes back to the system.
    if (now - last_trim >= 5000 && closed_since_trim_.load(std::memory_order_relaxed) >= 64) {
      closed_since_trim_.store(0, std::memory_order_relaxed);
      last_trim = now;
      ::malloc_trim(0);
    }
  }
}

void ConnectionServer::begin_shutdown() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard lock(listen_mutex_);
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);  // accept() returns: the loop ends
  }
  { std::lock_guard lock(state_mutex_); }
  state_cv_.notify_all();  // the housekeeper closes idle connections now
}

void ConnectionServer::abort_connections() {
  for (std::size_t i = 0; i < chunk_count_; ++i) {
    Slot* chunk = chunks_[i].load(std::memory_order_acquire);
    if (chunk == nullptr) continue;
    for (std::size_t j = 0; j < kChunk; ++j) {
      std::lock_guard lock(chunk[j].mutex);
      if (chunk[j].conn != nullptr) ::shutdown(chunk[j].conn->fd, SHUT_RDWR);
    }
  }
}

}  // namespace ordinaut_server
