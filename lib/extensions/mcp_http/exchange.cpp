#include "exchange.hpp"

#include <algorithm>

namespace ordinaut::mcp_http {

std::string sse_stored(const StoredEvent& event) {
  if (event.data.empty()) return "id: " + std::to_string(event.id) + "\ndata: \n\n";
  return sse_event(event.id, event.data);
}

Exchange::Exchange(bool batch, std::chrono::milliseconds keepalive, std::shared_ptr<EventStore> store, bool resumable,
                   std::chrono::milliseconds retry)
    : batch_(batch),
      keepalive_(keepalive),
      store_(std::move(store)),
      resumable_(resumable),
      retry_(retry),
      stream_(store_->new_stream()) {}

void Exchange::switch_to_sse_locked() {
  if (streamed_) return;
  streamed_ = true;
  // The priming event comes first, so its id precedes every message's.
  if (resumable_) priming_ = sse_priming(store_->append(stream_, {}), static_cast<std::uint64_t>(retry_.count()));
  for (auto& message : queue_) {
    const std::uint64_t id = store_->append(stream_, message);
    message = sse_event(id, message);
  }
}

void Exchange::enqueue_locked(std::string message) {
  if (!streamed_) {
    queue_.push_back(std::move(message));
    return;
  }
  const std::uint64_t id = store_->append(stream_, message);
  if (!detached_) queue_.push_back(sse_event(id, message));
}

void Exchange::expect() {
  std::lock_guard lock(mutex_);
  ++expected_;
  ++outstanding_;
}

void Exchange::respond(std::string message) {
  {
    std::lock_guard lock(mutex_);
    if (!over_) enqueue_locked(std::move(message));
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
    switch_to_sse_locked();
    enqueue_locked(std::move(message));
  }
  changed_.notify_all();
  return true;
}

bool Exchange::close_stream() {
  {
    std::lock_guard lock(mutex_);
    if (!resumable_ || over_ || outstanding_ == 0) return false;
    switch_to_sse_locked();
    detached_ = true;
    ++writer_generation_;
    queue_.clear();  // stored: the resume replays whatever the client missed
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
  if (!changed_.wait_for(lock, keepalive_, [&] { return outstanding_ == 0 || streamed_; })) switch_to_sse_locked();
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
  switch_to_sse_locked();
  const std::uint64_t generation = writer_generation_;
  std::string first = priming_;
  lock.unlock();
  return Response::event_stream([self = shared_from_this(), generation, first = std::move(first)](StreamSink& sink) {
    self->stream(sink, generation, first);
  });
}

EventStore::Status Exchange::resume(std::string_view last_event_id, Response& out) {
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    // Under the exchange's lock: no message of this stream is stored between
    // the snapshot and the new writer taking over the queue.
    auto replay = store_->after(last_event_id);
    if (replay.status != EventStore::Status::ok) return replay.status;
    if (replay.stream != stream_) return EventStore::Status::unknown;
    queue_.clear();
    for (const auto& event : replay.events) queue_.push_back(sse_stored(event));
    streamed_ = true;
    detached_ = false;
    generation = ++writer_generation_;
  }
  changed_.notify_all();  // an earlier writer sees it is superseded and ends
  out = Response::event_stream(
      [self = shared_from_this(), generation](StreamSink& sink) { self->stream(sink, generation, {}); });
  return EventStore::Status::ok;
}

void Exchange::stream(StreamSink& sink, std::uint64_t generation, const std::string& first) {
  std::deque<std::string> out;
  auto last_write = std::chrono::steady_clock::now();
  bool ok = sink.is_open() && (first.empty() || sink.write(first));
  while (ok) {
    bool done = false;
    {
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::min(keepalive_, kPollSlice), [&] {
        return !queue_.empty() || outstanding_ == 0 || superseded_locked(generation);
      });
      // Closed by close_stream() or taken over by a resume: end this HTTP
      // reply; the events stay in the store.
      if (superseded_locked(generation)) return;
      out.swap(queue_);
      done = outstanding_ == 0;
      if (done) over_ = true;  // whatever a cancelled tool emits later has nowhere to go
    }
    ok = sink.is_open();
    if (ok && out.empty() && !done && std::chrono::steady_clock::now() - last_write >= keepalive_) {
      ok = sink.write(": keepalive\n\n");  // also how a vanished client is noticed by plain sinks
      last_write = std::chrono::steady_clock::now();
    }
    if (!out.empty()) last_write = std::chrono::steady_clock::now();
    for (const auto& event : out) {
      if (!ok || !(ok = sink.write(event))) break;
    }
    out.clear();
    if (ok && done) return;
  }
  {
    std::lock_guard lock(mutex_);
    if (superseded_locked(generation)) return;  // another writer owns the stream now
    over_ = true;
    gone_ = true;
    queue_.clear();
  }
  changed_.notify_all();
}

}  // namespace ordinaut::mcp_http
