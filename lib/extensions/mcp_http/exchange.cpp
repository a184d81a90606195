#include "exchange.hpp"

#include <algorithm>

namespace ordinaut::mcp_http {

std::string sse_message(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 24);
  out += "event: message\ndata: ";
  out += json;  // compact JSON: never contains a raw newline
  out += "\n\n";
  return out;
}

void Exchange::expect() {
  std::lock_guard lock(mutex_);
  ++expected_;
  ++outstanding_;
}

void Exchange::respond(std::string message) {
  {
    std::lock_guard lock(mutex_);
    if (!over_) queue_.push_back(std::move(message));
    --outstanding_;
  }
  changed_.notify_all();
}

void Exchange::abandon() {
  {
    std::lock_guard lock(mutex_);
    --outstanding_;
  }
  changed_.notify_all();
}

bool Exchange::emit(std::string message) {
  {
    std::lock_guard lock(mutex_);
    if (over_) return false;
    queue_.push_back(std::move(message));
    streamed_ = true;
  }
  changed_.notify_all();
  return true;
}

bool Exchange::client_gone() const {
  std::lock_guard lock(mutex_);
  return gone_;
}

bool Exchange::has_requests() const {
  std::lock_guard lock(mutex_);
  return expected_ > 0;
}

Response Exchange::finish() {
  std::unique_lock lock(mutex_);
  // A call that stays silent past the keep-alive interval is answered as a
  // stream too, so that keep-alive comments can hold the connection open.
  if (!changed_.wait_for(lock, keepalive_, [&] { return outstanding_ == 0 || streamed_; })) streamed_ = true;
  if (!streamed_ && !queue_.empty()) {
    over_ = true;
    if (!batch_) return Response::json_text(200, std::move(queue_.front()));
    std::string body = "[";
    for (std::size_t i = 0; i < queue_.size(); ++i) {
      if (i) body += ',';
      body += queue_[i];
    }
    body += ']';
    return Response::json_text(200, std::move(body));
  }
  // Streamed, or every request was cancelled (an empty stream: no response is due).
  lock.unlock();
  return Response::event_stream([self = shared_from_this()](StreamSink& sink) { self->stream(sink); });
}

void Exchange::stream(StreamSink& sink) {
  std::deque<std::string> out;
  auto last_write = std::chrono::steady_clock::now();
  while (true) {
    bool done = false;
    {
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::min(keepalive_, kPollSlice), [&] { return !queue_.empty() || outstanding_ == 0; });
      out.swap(queue_);
      done = outstanding_ == 0;
      if (done) over_ = true;  // whatever a cancelled tool emits later has nowhere to go
    }
    bool ok = sink.is_open();
    if (ok && out.empty() && !done && std::chrono::steady_clock::now() - last_write >= keepalive_) {
      ok = sink.write(": keepalive\n\n");  // also how a vanished client is noticed by plain sinks
      last_write = std::chrono::steady_clock::now();
    }
    if (!out.empty()) last_write = std::chrono::steady_clock::now();
    for (const auto& message : out) {
      if (!ok || !(ok = sink.write(sse_message(message)))) break;
    }
    out.clear();
    if (!ok) {
      {
        std::lock_guard lock(mutex_);
        over_ = true;
        gone_ = true;
        queue_.clear();
      }
      changed_.notify_all();
      return;
    }
    if (done) return;
  }
}

}  // namespace ordinaut::mcp_http
