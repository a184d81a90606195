#include "httplib_adapter.hpp"

#include <strings.h>

#include <memory>
#include <string_view>

namespace ordinaut_server {

namespace {

// httplib adds the connection's addresses as pseudo headers; they are in
// Request::remote_addr already and a client could send look-alikes.
bool is_pseudo_header(const std::string& name) {
  return strcasecmp(name.c_str(), "REMOTE_ADDR") == 0 || strcasecmp(name.c_str(), "REMOTE_PORT") == 0 ||
         strcasecmp(name.c_str(), "LOCAL_ADDR") == 0 || strcasecmp(name.c_str(), "LOCAL_PORT") == 0;
}

}  // namespace

ordinaut::Request to_request(const httplib::Request& in) {
  ordinaut::Request r;
  r.method = in.method;
  const std::string& target = in.target.empty() ? in.path : in.target;
  const auto q = target.find('?');
  r.path.assign(target, 0, q);
  if (q != std::string::npos) r.query_string.assign(target, q + 1);
  for (const auto& [name, value] : in.headers) {
    if (!is_pseudo_header(name)) r.headers.add(name, value);
  }
  r.body = in.body;
  r.remote_addr = in.remote_addr;
  return r;
}

void write_response(ordinaut::Response&& out, httplib::Response& res, StreamWatcher& watcher, int sock) {
  res.status = out.status;
  std::string content_type;
  for (const auto& [name, value] : out.headers.list()) {
    if (strcasecmp(name.c_str(), "Content-Type") == 0) {
      content_type = value;  // httplib sets it with the content
    } else {
      res.set_header(name, value);  // drops values holding CR or LF: no header injection
    }
  }
  if (out.stream) {
    if (content_type.empty()) content_type = "text/event-stream";
    const bool sse = std::string_view(content_type).starts_with("text/event-stream");
    auto producer = std::make_shared<ordinaut::StreamProducer>(std::move(out.stream));
    res.set_chunked_content_provider(content_type, [producer, &watcher, sock, sse](std::size_t, httplib::DataSink& sink) {
      watcher.run(*producer, sink, sock, sse);
      sink.done();
      return true;
    });
  } else if (!out.body.empty() || !content_type.empty()) {
    res.body = std::move(out.body);
    res.set_header("Content-Type", content_type.empty() ? "application/octet-stream" : content_type);
  }
}

}  // namespace ordinaut_server
