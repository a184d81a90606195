#include "connection_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace ordinaut_server {

namespace {

thread_local int t_current_socket = -1;

int poll_one(int fd, short events, long timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int n = ::poll(&p, 1, static_cast<int>(timeout_ms));
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

long to_ms(time_t sec, time_t usec) { return static_cast<long>(sec) * 1000 + static_cast<long>(usec) / 1000; }

void address_of(int sock, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  int rc = peer ? ::getpeername(sock, reinterpret_cast<sockaddr*>(&addr), &len)
                : ::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return;
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

// One connection's byte stream. httplib reads request lines one byte at a
// time, so reads go through a buffer that lives as long as the connection.
// Reads and writes try the socket first and poll only when it would block.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(int sock, long read_timeout_ms, long write_timeout_ms)
      : sock_(sock), read_timeout_ms_(read_timeout_ms), write_timeout_ms_(write_timeout_ms) {
    address_of(sock_, true, remote_ip_, remote_port_);
    address_of(sock_, false, local_ip_, local_port_);
  }

  bool buffered() const { return begin_ < end_; }

  bool is_readable() const override { return buffered() || poll_one(sock_, POLLIN, read_timeout_ms_) > 0; }
  // write() enforces the write timeout itself; this only reports a failed write.
  bool is_writable() const override { return !write_failed_; }

  ssize_t read(char* ptr, size_t size) override {
    if (buffered()) {
      size_t n = std::min(size, end_ - begin_);
      std::memcpy(ptr, buffer_ + begin_, n);
      begin_ += n;
      return static_cast<ssize_t>(n);
    }
    if (size >= sizeof buffer_) return receive(ptr, size);
    ssize_t got = receive(buffer_, sizeof buffer_);
    if (got <= 0) return got;
    begin_ = 0;
    end_ = static_cast<size_t>(got);
    return read(ptr, size);
  }

  using httplib::Stream::write;
  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      ssize_t n = ::send(sock_, ptr, size, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if ((errno != EAGAIN && errno != EWOULDBLOCK) || poll_one(sock_, POLLOUT, write_timeout_ms_) <= 0) {
        write_failed_ = true;
        return -1;
      }
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = remote_ip_;
    port = remote_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = local_ip_;
    port = local_port_;
  }
  socket_t socket() const override { return sock_; }

 private:
  ssize_t receive(char* ptr, size_t size) {
    for (;;) {
      ssize_t n = ::recv(sock_, ptr, size, MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if ((errno != EAGAIN && errno != EWOULDBLOCK) || poll_one(sock_, POLLIN, read_timeout_ms_) <= 0) return -1;
    }
  }

  int sock_;
  long read_timeout_ms_;
  long write_timeout_ms_;
  bool write_failed_ = false;
  char buffer_[4096];
  size_t begin_ = 0;
  size_t end_ = 0;
  std::string remote_ip_, local_ip_;
  int remote_port_ = -1, local_port_ = -1;
};

}  // namespace

ConnectionServer::ConnectionServer() : wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

ConnectionServer::~ConnectionServer() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

int ConnectionServer::current_socket() noexcept { return t_current_socket; }

void ConnectionServer::begin_shutdown() {
  if (stopping_.exchange(true)) return;
  // What stop() does, also before listening began (stop() only acts while
  // running): close the listening socket, so the accept loop ends or never starts.
  const socket_t listener = svr_sock_.exchange(INVALID_SOCKET);
  if (listener != INVALID_SOCKET) {
    ::shutdown(listener, SHUT_RDWR);
    ::close(listener);
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void ConnectionServer::abort_connections() {
  std::lock_guard lock(mutex_);
  for (int sock : sockets_) ::shutdown(sock, SHUT_RDWR);
}

std::size_t ConnectionServer::open_connections() const {
  std::lock_guard lock(mutex_);
  return sockets_.size();
}

bool ConnectionServer::wait_for_request(int sock, bool buffered) const {
  if (buffered) return true;
  pollfd fds[2] = {{sock, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  const long timeout_ms = static_cast<long>(keep_alive_timeout_sec_) * 1000;
  for (;;) {
    int n = ::poll(fds, 2, static_cast<int>(timeout_ms));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // keep-alive timeout
    // Bytes already sent are a request in flight, served even during shutdown;
    // an idle connection closes as soon as shutdown begins.
    return fds[0].revents != 0;
  }
}

bool ConnectionServer::process_and_close_socket(socket_t sock) {
  {
    std::lock_guard lock(mutex_);
    sockets_.insert(sock);
  }
  int yes = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  ConnectionStream stream(sock, to_ms(read_timeout_sec_, read_timeout_usec_),
                          to_ms(write_timeout_sec_, write_timeout_usec_));
  t_current_socket = sock;
  bool ret = false;
  std::size_t remaining = keep_alive_max_count_;
  for (bool first = true; remaining > 0; first = false) {
    const bool stopping = stopping_.load(std::memory_order_relaxed) || svr_sock_ == INVALID_SOCKET;
    if (!first && stopping) break;  // the response said "Connection: close" or the drain began after it
    if (!wait_for_request(sock, stream.buffered())) break;
    const bool close_connection = remaining == 1 || stopping;
    bool connection_closed = false;
    ret = process_request(stream, close_connection, connection_closed, nullptr);
    if (!ret || connection_closed) break;
    --remaining;
  }
  t_current_socket = -1;
  {
    std::lock_guard lock(mutex_);
    sockets_.erase(sock);
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ret;
}

}  // namespace ordinaut_server
