#include "tool_context.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "protocol.hpp"

namespace ordinaut::mcp_http {

void McpToolContext::log(std::string_view level, std::string_view message) {
  const int rank = tool_log_level_rank(level);
  if (rank < session_->min_log_rank()) return;  // logging/setLevel filters
  call_->exchange->emit(notification_message(
      "notifications/message", fmt::format(R"({{"level":"{}","logger":{},"data":{}}})",
                                           kLogLevels[static_cast<std::size_t>(rank)], quote(call_->tool),
                                           quote(message))));
}

void McpToolContext::progress(double progress, double total, std::string_view message) {
  if (call_->progress_token.empty() || !std::isfinite(progress)) return;  // the client asked for none
  std::string params = fmt::format(R"({{"progressToken":{},"progress":{})", call_->progress_token, progress);
  if (total > 0 && std::isfinite(total)) params += fmt::format(R"(,"total":{})", total);
  if (!message.empty()) params += R"(,"message":)" + quote(message);
  params += '}';
  call_->exchange->emit(notification_message("notifications/progress", params));
}

Result<Json> McpToolContext::ask_client(std::string_view method, const JsonValue& params,
                                        std::chrono::milliseconds timeout) {
  const ClientCapabilities& caps = session_->capabilities();
  const char* needed = nullptr;
  if (method == "sampling/createMessage" && !caps.sampling) needed = "sampling";
  if (method == "elicitation/create" && !caps.elicitation) needed = "elicitation";
  if (method == "roots/list" && !caps.roots) needed = "roots";
  if (needed != nullptr) {
    return make_error("unsupported", fmt::format("the MCP client did not declare the {} capability, so it cannot "
                                                 "answer {}",
                                                 needed, method));
  }
  if (!params.IsObject()) {
    return make_error("invalid_argument", fmt::format("params of {} must be a JSON object", method));
  }
  if (cancelled()) return make_error("cancelled", "the call was cancelled");
  timeout = std::clamp(timeout, std::chrono::milliseconds(1), max_ask_timeout_);
  auto [id, ask] = session_->add_ask();
  if (!call_->exchange->emit(request_message(id, method, json::dump(params)))) {
    session_->remove_ask(id);
    return make_error("unavailable", "the stream of this call is closed; the client cannot be asked");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(ask->mutex);
  while (!ask->done) {
    // Short slices: cancellation and a vanished client are noticed by polling.
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      lock.unlock();
      session_->remove_ask(id);
      return make_error("timeout", fmt::format("the client did not answer {} within {} ms", method, timeout.count()));
    }
    ask->answered.wait_for(lock, std::min<std::chrono::steady_clock::duration>(deadline - now,
                                                                               std::chrono::milliseconds(100)));
    if (!ask->done && cancelled()) {
      lock.unlock();
      session_->remove_ask(id);
      return make_error("cancelled", fmt::format("the call was cancelled while waiting for {}", method));
    }
  }
  if (!ask->ok) {
    return make_error("client_error",
                      fmt::format("the client answered {} with error {}: {}", method, ask->error_code, ask->error_text));
  }
  auto parsed = json::parse(ask->result_json);
  if (!parsed) return make_error("client_error", "the client's result is not JSON: " + parsed.error().message);
  return std::move(parsed).value();
}

bool McpToolContext::cancelled() const {
  return call_->cancelled.load() || call_->exchange->client_gone() || session_->closed();
}

bool McpToolContext::close_stream() { return call_->exchange->close_stream(); }

}  // namespace ordinaut::mcp_http
