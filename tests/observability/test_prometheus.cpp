// A real Prometheus server (Debian package `prometheus`) scrapes the real
// ordinaut-server over loopback every second; its HTTP API must then return
// series that observability exported.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "obs_support.hpp"

using namespace obs_test;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// prometheus with a one-target configuration, in its own temporary folder.
class PrometheusProcess {
 public:
  PrometheusProcess(int target_port) {
    char dir[] = "/tmp/ordinaut-prometheus-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = dir;
    std::ofstream(dir_ / "prometheus.yml") << "global:\n"
                                              "  scrape_interval: 1s\n"
                                              "  evaluation_interval: 1s\n"
                                              "scrape_configs:\n"
                                              "  - job_name: ordinaut\n"
                                              "    metrics_path: /ext/observability/metrics\n"
                                              "    static_configs:\n"
                                              "      - targets: ['127.0.0.1:"
                                           << target_port << "']\n";
    port_ = free_port();
    const std::string config = "--config.file=" + (dir_ / "prometheus.yml").string();
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    const std::string storage = "--storage.tsdb.path=" + (dir_ / "data").string();
    const std::string log = (dir_ / "prometheus.log").string();
    std::fflush(nullptr);  // or the child would write our buffered output again
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execlp("prometheus", "prometheus", config.c_str(), listen.c_str(), storage.c_str(), "--log.level=warn",
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~PrometheusProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) ::usleep(50'000);
      if (::waitpid(pid_, &status, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  int port() const { return port_; }
  bool running() const {
    int status = 0;
    return ::waitpid(pid_, &status, WNOHANG) == 0;
  }
  std::string log() const { return server_test::read_text(dir_ / "prometheus.log"); }

  /// The "result" array of an instant query, or an empty document on failure.
  ordinaut::Json query(const std::string& promql) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(5, 0);
    auto res = c.Get(("/api/v1/query?query=" + httplib::detail::encode_query_param(promql)).c_str());
    ordinaut::Json out;
    out.SetArray();
    if (!res || res->status != 200) return out;
    auto doc = ordinaut::json::parse(res->body);
    if (!doc || !doc->HasMember("data") || !(*doc)["data"].HasMember("result")) return out;
    return ordinaut::json::copy((*doc)["data"]["result"]);
  }

 private:
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("Prometheus scrapes the server and its HTTP API returns series we exported") {
  auto server = start_server();
  auto c = client(server->port());
  REQUIRE(c->Post("/ext/events_demo/publish/prom", R"({"x":1})", "application/json"));

  PrometheusProcess prometheus(server->port());
  // Each scrape hits /metrics, whose own route series then appears.
  ordinaut::Json result;
  const bool scraped = eventually(
      [&] {
        result = prometheus.query(
            R"(ordinaut_http_requests_total{extension="observability",route="/metrics",status_class="2xx"})");
        return result.IsArray() && result.Size() == 1 && prometheus.running();
      },
      60s);
  REQUIRE_MESSAGE(scraped, "no series after 60 s; prometheus log:\n" << prometheus.log());
  CHECK(std::string(result[0]["metric"]["job"].GetString()) == "ordinaut");
  CHECK(std::string(result[0]["metric"]["method"].GetString()) == "GET");
  CHECK(std::atof(result[0]["value"][1].GetString()) >= 1);

  auto up = prometheus.query(R"(up{job="ordinaut"})");
  REQUIRE(up.Size() == 1);
  CHECK(std::string(up[0]["value"][1].GetString()) == "1");

  auto state = prometheus.query(R"(ordinaut_extension_state{extension="observability",state="active"})");
  REQUIRE(state.Size() == 1);
  CHECK(std::string(state[0]["value"][1].GetString()) == "1");

  auto published = prometheus.query("ext_events_demo_published_total");
  REQUIRE(published.Size() == 1);
  CHECK(std::string(published[0]["value"][1].GetString()) == "1");

  // A histogram Prometheus can compute quantiles from.
  auto p99 = prometheus.query(
      R"(histogram_quantile(0.99, sum by (le) (ordinaut_http_request_duration_seconds_bucket{route="/metrics"})))");
  REQUIRE(p99.Size() == 1);
  CHECK(std::atof(p99[0]["value"][1].GetString()) > 0);
}
