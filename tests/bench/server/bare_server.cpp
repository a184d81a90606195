// The baseline for tests/bench/server/run.sh: a bare cpp-httplib server
// answering the same trivial route as srvtest's GET /hello, tuned the way
// ordinaut-server is (TCP_NODELAY, long keep-alive, same pool size, backlog
// 1024). Usage: bare_server PORT THREADS
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <httplib.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bare_server PORT THREADS\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const std::size_t threads = static_cast<std::size_t>(std::atoi(argv[2]));
  httplib::Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(30);
  server.set_read_timeout(30, 0);
  server.set_write_timeout(30, 0);
  int listen_fd = -1;
  server.set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = fd;
  });
  server.Get("/ext/srvtest/hello", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("hello", "text/plain; charset=utf-8");
  });
  if (!server.bind_to_port("127.0.0.1", port)) {
    std::fprintf(stderr, "bare_server: cannot bind 127.0.0.1:%d\n", port);
    return 1;
  }
  if (listen_fd >= 0) ::listen(listen_fd, 1024);
  std::printf("bare_server listening on http://127.0.0.1:%d\n", port);
  std::fflush(stdout);
  server.listen_after_bind();
}
