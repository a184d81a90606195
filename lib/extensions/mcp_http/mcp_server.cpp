#include "mcp_server.hpp"

#include <algorithm>

#include <fmt/format.h>

#include <ordinaut/version.hpp>

#include "tool_context.hpp"

namespace ordinaut::mcp_http {

namespace {

constexpr std::string_view kSessionHeader = "Mcp-Session-Id";
constexpr std::string_view kVersionHeader = "MCP-Protocol-Version";

std::string supported_list() {
  std::string out;
  for (std::string_view v : kProtocolVersions) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

const JsonValue* member(const JsonValue* object, const char* name) {
  if (object == nullptr || !object->IsObject()) return nullptr;
  auto it = object->FindMember(name);
  return it == object->MemberEnd() ? nullptr : &it->value;
}

}  // namespace

McpServer::McpServer(ToolView tools, ResourceView resources, PromptView prompts, Config config,
                     bool scopes_enforced, Logger logger)
    : tools_(tools),
      config_(std::move(config)),
      scopes_enforced_(scopes_enforced),
      logger_(std::move(logger)),
      sessions_(config_.max_sessions, std::chrono::duration_cast<std::chrono::milliseconds>(config_.session_idle),
                config_.max_sessions_per_client, config_.event_limits),
      workers_(config_.max_workers, std::chrono::seconds(30)),
      catalog_(tools, config_),
      content_(std::make_shared<ResourcesPrompts>(resources, prompts, config_)) {}

McpServer::~McpServer() { stop(); }

void McpServer::start() {
  if (listening_) return;
  // The listener runs on whatever thread changed the registry (e.g. a lazy
  // extension loading inside another request): it only flags the streams.
  listener_ = tools_.on_change([weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->sessions_.for_each([](Session& s) { s.notify_tools_changed(); });
    }
  });
  content_->start([weak = weak_from_this()](const std::string& message) {
    if (auto self = weak.lock()) self->sessions_.for_each([&](Session& s) { s.notify(message); });
  });
  listening_ = true;
}

void McpServer::stop() {
  if (listening_) {
    tools_.remove_listener(listener_);
    listening_ = false;
  }
  sessions_.close_all();
  content_->stop();
  workers_.stop(std::chrono::seconds(3));
}

// ---- HTTP plumbing -----------------------------------------------------------

Response McpServer::http_error(int status, int code, std::string_view message, std::string_view id) const {
  return Response::json_text(status, error_message(id, code, message));
}

std::optional<Response> McpServer::refuse_rebinding(const Request& request, bool json_rpc) const {
  std::string problem = rebinding_problem(request, config_);
  if (problem.empty()) return std::nullopt;
  logger_.audit("mcp_host_refused", problem,
                fmt::format(R"({{"host":{},"origin":{},"remote":{}}})", quote(request.header("Host").substr(0, 200)),
                            quote(request.header("Origin").substr(0, 200)), quote(request.remote_addr)));
  if (json_rpc) return http_error(403, kConnectionError, "Forbidden: " + problem);
  return Response::error(403, "forbidden", problem);
}

void McpServer::add_cors(const Request& request, Response& response) const {
  // Only reached after the Origin passed the rebinding check.
  if (!request.headers.has("Origin")) return;
  response.headers.set("Access-Control-Allow-Origin", std::string(request.header("Origin")));
  response.headers.set("Access-Control-Expose-Headers", "Mcp-Session-Id, MCP-Protocol-Version");
  response.headers.set("Vary", "Origin");
}

Response McpServer::handle(Request& request) {
  if (auto refused = refuse_rebinding(request, true)) return std::move(*refused);
  Response response;
  if (request.method == "OPTIONS") {
    response.status = 204;
    response.headers.set("Allow", "GET, POST, DELETE, OPTIONS");
    response.headers.set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    response.headers.set("Access-Control-Allow-Headers",
                         "Content-Type, Accept, Authorization, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, "
                         "X-Scopes");
    response.headers.set("Access-Control-Max-Age", "600");
    add_cors(request, response);
    return response;
  }
  if (!Access::of(request, scopes_enforced_).mcp_allowed()) {
    logger_.audit("scope_denied", fmt::format("{} {} without scope {}", request.method, request.path, kMcpScope),
                  fmt::format(R"({{"required_scope":"{}","remote":{}}})", kMcpScope, quote(request.remote_addr)));
    response = http_error(403, kConnectionError, fmt::format("Forbidden: missing scope {}", kMcpScope));
  } else if (request.method == "POST") {
    response = post(request);
  } else if (request.method == "GET") {
    response = get(request);
  } else if (request.method == "DELETE") {
    response = del(request);
  } else {
    response = http_error(405, kConnectionError,
                          fmt::format("Method not allowed: {} (use POST, GET or DELETE)", request.method));
    response.headers.set("Allow", "GET, POST, DELETE");
  }
  add_cors(request, response);
  return response;
}

std::shared_ptr<Session> McpServer::session_of(const Request& request, Response& error) {
  std::string_view id = request.header(kSessionHeader);
  if (id.empty()) {
    error = http_error(400, kConnectionError, "Bad Request: Mcp-Session-Id header is required");
    return nullptr;
  }
  auto session = sessions_.find(id);
  if (!session) {
    error = http_error(404, kSessionNotFound, "Session not found");
    return nullptr;
  }
  session->touch();
  return session;
}

// ---- POST ----------------------------------------------------------------------

Response McpServer::post(Request& request) {
  std::string_view accept = request.header("Accept");
  if (!accepts(accept, "application/json") || !accepts(accept, "text/event-stream")) {
    return http_error(406, kConnectionError,
                      "Not Acceptable: Accept must include both application/json and text/event-stream");
  }
  if (!is_json_content_type(request.header("Content-Type"))) {
    return http_error(415, kConnectionError, "Unsupported Media Type: Content-Type must be application/json");
  }
  if (request.body.size() > config_.max_body) {
    return http_error(413, kConnectionError,
                      fmt::format("Payload Too Large: the body exceeds {} bytes", config_.max_body));
  }
  if (auto refused = refuse_version(request)) return std::move(*refused);
  auto doc = json::parse(request.body);
  if (!doc) return http_error(400, kParseError, "Parse error: " + doc.error().message);

  const bool batch = doc->IsArray();
  std::vector<Message> messages;
  if (batch) {
    if (doc->Empty()) return http_error(400, kInvalidRequest, "Invalid Request: empty batch");
    if (doc->Size() > config_.max_batch) {
      return http_error(400, kInvalidRequest,
                        fmt::format("Invalid Request: a batch holds at most {} messages", config_.max_batch));
    }
    for (const auto& item : doc->GetArray()) messages.push_back(classify(item));
  } else {
    messages.push_back(classify(*doc));
  }

  for (const auto& m : messages) {
    if (m.kind == MessageKind::request && m.method == "initialize") {
      if (batch) return http_error(400, kInvalidRequest, "Invalid Request: initialize must not be part of a batch");
      if (request.headers.has(kSessionHeader) && sessions_.find(request.header(kSessionHeader))) {
        return http_error(400, kInvalidRequest, "Invalid Request: Server already initialized", m.id);
      }
      return initialize(m, request.remote_addr);
    }
  }
  if (!batch && messages.front().kind == MessageKind::invalid) {
    return http_error(400, kInvalidRequest, "Invalid Request: " + messages.front().problem, messages.front().id);
  }

  Response error;
  auto session = session_of(request, error);
  if (!session) return error;
  if (batch && session->protocol_version() != kBatchVersion) {
    return http_error(400, kInvalidRequest,
                      fmt::format("Invalid Request: JSON-RPC batches exist only in protocol version {}; this session "
                                  "uses {}",
                                  kBatchVersion, session->protocol_version()));
  }

  const Access access = Access::of(request, scopes_enforced_);
  auto exchange = std::make_shared<Exchange>(batch, config_.keepalive, session->events(), session->resumable(),
                                             config_.sse_retry);
  session->add_exchange(exchange);
  for (const auto& m : messages) {
    switch (m.kind) {
      case MessageKind::invalid:
        exchange->expect();
        exchange->respond(error_message(m.id, kInvalidRequest, "Invalid Request: " + m.problem));
        break;
      case MessageKind::response: on_response(*session, m); break;
      case MessageKind::notification: on_notification(*session, m); break;
      case MessageKind::request: on_request(session, m, exchange, access); break;
    }
  }
  Response response;
  if (!exchange->has_requests()) {
    response.status = 202;  // notifications and responses only
  } else {
    response = exchange->finish();
  }
  response.headers.set(std::string(kSessionHeader), session->id());
  return response;
}

Response McpServer::initialize(const Message& m, const std::string& client_address) {
  const JsonValue* version = member(m.params, "protocolVersion");
  const JsonValue* caps = member(m.params, "capabilities");
  const JsonValue* client = member(m.params, "clientInfo");
  std::string problem;
  if (version == nullptr || !version->IsString()) {
    problem = "params.protocolVersion must be a string";
  } else if (caps == nullptr || !caps->IsObject()) {
    problem = "params.capabilities must be an object";
  } else if (client == nullptr || !client->IsObject() || !member(client, "name") || !(*member(client, "name")).IsString() ||
             !member(client, "version") || !(*member(client, "version")).IsString()) {
    problem = "params.clientInfo must be an object with string name and version";
  } else {
    // Kept for the session's life: bounded, whatever the body limit.
    for (const char* field : {"name", "version", "title"}) {
      const JsonValue* v = member(client, field);
      if (v != nullptr && v->IsString() && v->GetStringLength() > config_.max_client_info) {
        problem = fmt::format("params.clientInfo.{} is {} bytes long; at most {} bytes are accepted", field,
                              v->GetStringLength(), config_.max_client_info);
        break;
      }
    }
  }
  if (!problem.empty()) {
    return Response::json_text(200, error_message(m.id, kInvalidParams, "Invalid params: " + problem));
  }
  ClientCapabilities cc;
  cc.sampling = member(caps, "sampling") != nullptr && member(caps, "sampling")->IsObject();
  cc.elicitation = member(caps, "elicitation") != nullptr && member(caps, "elicitation")->IsObject();
  cc.roots = member(caps, "roots") != nullptr && member(caps, "roots")->IsObject();
  const std::string_view negotiated =
      negotiate_version(std::string_view(version->GetString(), version->GetStringLength()));
  const JsonValue& name = *member(client, "name");
  auto session = sessions_.create(std::string(negotiated), cc, std::string(name.GetString(), name.GetStringLength()),
                                  client_address);
  if (!session) {
    // Only when every session that could make room is busy (a stream open or a call running).
    logger_.warn("mcp_sessions_full",
                 fmt::format("initialize refused: {} sessions are open, none idle (limits: {} in all, {} per client "
                             "address)",
                             sessions_.size(), config_.max_sessions, config_.max_sessions_per_client));
    return http_error(503, kConnectionError,
                      fmt::format("Service Unavailable: too many busy sessions (limits: {} in all, {} per client "
                                  "address)",
                                  config_.max_sessions, config_.max_sessions_per_client),
                      m.id);
  }
  const std::string result = fmt::format(
      R"({{"protocolVersion":"{}","capabilities":{{"tools":{{"listChanged":true}},"logging":{{}},)"
      R"("resources":{{"subscribe":true,"listChanged":true}},"prompts":{{"listChanged":true}},"completions":{{}}}},)"
      R"("serverInfo":{{"name":"ordinaut-mcp_http","title":"Ordinaut MCP server","version":"{}"}},)"
      R"("instructions":"Tools, resources and prompts of the Ordinaut extension host. A name ext.<id>.<name> or a )"
      R"(URI ext://<id>/... belongs to extension <id>; ordinaut://host/status describes every extension. Every )"
      R"(tool call is validated against the tool's input schema."}})",
      negotiated, ordinaut::library_version());
  Response response = Response::json_text(200, result_message(m.id, result));
  response.headers.set(std::string(kSessionHeader), session->id());
  return response;
}

void McpServer::on_notification(Session& session, const Message& m) {
  if (m.method == "notifications/initialized") {
    session.set_initialized();
  } else if (m.method == "notifications/cancelled") {
    const JsonValue* id = member(m.params, "requestId");
    if (id == nullptr || !(id->IsString() || id->IsInt64() || id->IsUint64())) return;
    if (auto call = session.find_call(json::dump(*id))) {
      call->cancelled.store(true);
      if (call->settle()) call->exchange->abandon();  // a cancelled request gets no response
    }
  }
  // Other notifications (progress, roots/list_changed, ...) need no action.
}

void McpServer::on_response(Session& session, const Message& m) {
  bool known;
  if (m.result != nullptr) {
    known = session.resolve_ask(m.id, true, json::dump(*m.result), 0, {});
  } else {
    known = session.resolve_ask(m.id, false, {}, (*m.error)["code"].GetInt(), (*m.error)["message"].GetString());
  }
  if (!known) {
    logger_.log(LogLevel::debug, "mcp_unexpected_response",
                fmt::format("session {}: response for unknown or expired request id {}", session.id(), m.id));
  }
}

void McpServer::on_request(const std::shared_ptr<Session>& session, const Message& m,
                           const std::shared_ptr<Exchange>& exchange, const Access& access) {
  exchange->expect();
  if (m.method == "tools/call") {
    tools_call(session, m, exchange, access);
  } else if (m.method == "ping") {
    exchange->respond(result_message(m.id, "{}"));
  } else if (m.method == "tools/list") {
    int code = 0;
    std::string text;
    std::string result = tools_list(m, access, code, text);
    exchange->respond(code == 0 ? result_message(m.id, result) : error_message(m.id, code, text));
  } else if (m.method == "logging/setLevel") {
    const JsonValue* level = member(m.params, "level");
    std::optional<int> rank;
    if (level != nullptr && level->IsString()) rank = log_level_rank(level->GetString());
    if (!rank) {
      exchange->respond(error_message(m.id, kInvalidParams,
                                      "Invalid params: level must be one of debug, info, notice, warning, error, "
                                      "critical, alert, emergency"));
    } else {
      session->set_min_log_rank(*rank);
      exchange->respond(result_message(m.id, "{}"));
    }
  } else if (m.method == "initialize") {
    exchange->respond(error_message(m.id, kInvalidRequest, "Invalid Request: Server already initialized"));
  } else if (auto outcome = content_->handle(m.method, m.params, session, access)) {
    exchange->respond(outcome->code == 0 ? result_message(m.id, outcome->result_json)
                                         : error_message(m.id, outcome->code, outcome->message, outcome->data_json));
  } else {
    exchange->respond(error_message(m.id, kMethodNotFound, "Method not found: " + m.method,
                                    fmt::format(R"({{"method":{}}})", quote(m.method))));
  }
}

std::string McpServer::tools_list(const Message& m, const Access& access, int& error_code, std::string& error_text) {
  std::string after;
  bool has_cursor = false;
  if (const JsonValue* cursor = member(m.params, "cursor"); cursor != nullptr && !cursor->IsNull()) {
    std::optional<std::string> decoded;
    if (cursor->IsString()) decoded = base64url_decode(cursor->GetString());
    if (!decoded || !decoded->starts_with("after:")) {
      error_code = kInvalidParams;
      error_text = "Invalid params: unknown cursor (use the nextCursor of an earlier tools/list)";
      return {};
    }
    after = decoded->substr(6);
    has_cursor = true;
  }
  auto snap = catalog_.snapshot();
  auto it = snap->tools.begin();
  if (has_cursor) {
    it = std::upper_bound(snap->tools.begin(), snap->tools.end(), after,
                          [](const std::string& name, const CatalogTool& t) { return name < t.mcp_name; });
  }
  std::string out = R"({"tools":[)";
  std::size_t count = 0;
  std::string last;
  bool more = false;
  for (; it != snap->tools.end(); ++it) {
    if (!access.tool_allowed(it->registry_name)) continue;
    if (count == config_.page_size) {
      more = true;
      break;
    }
    if (count++) out += ',';
    out += it->json;
    last = it->mcp_name;
  }
  out += ']';
  if (more) out += R"(,"nextCursor":)" + quote(base64url_encode("after:" + last));
  out += '}';
  return out;
}

void McpServer::tools_call(const std::shared_ptr<Session>& session, const Message& m,
                           const std::shared_ptr<Exchange>& exchange, const Access& access) {
  auto fail = [&](int code, const std::string& text, std::string_view data = {}) {
    exchange->respond(error_message(m.id, code, text, data));
  };
  const JsonValue* name = member(m.params, "name");
  if (name == nullptr || !name->IsString()) return fail(kInvalidParams, "Invalid params: name must be a string");
  const JsonValue* arguments = member(m.params, "arguments");
  if (arguments != nullptr && !arguments->IsObject() && !arguments->IsNull()) {
    return fail(kInvalidParams, fmt::format("Invalid params: arguments must be an object, got {}",
                                            json::type_name(*arguments)));
  }
  std::string token;
  if (const JsonValue* t = member(member(m.params, "_meta"), "progressToken"); t != nullptr) {
    if (!(t->IsString() || t->IsInt64() || t->IsUint64())) {
      return fail(kInvalidParams, "Invalid params: _meta.progressToken must be a string or an integer");
    }
    token = json::dump(*t);
  }
  const std::string requested(name->GetString(), name->GetStringLength());
  auto snap = catalog_.snapshot();
  const CatalogTool* tool = snap->find(requested);
  // Unlisted "ext.{id}.*" names go to the registry anyway: it loads a lazy
  // extension on the first call of one of its tools.
  if (tool == nullptr && !requested.starts_with("ext.")) {
    return fail(kInvalidParams, "Unknown tool: " + requested, fmt::format(R"({{"tool":{}}})", quote(requested)));
  }
  const std::string registry_name = tool ? tool->registry_name : requested;
  if (!access.tool_allowed(registry_name)) {
    logger_.audit("scope_denied", fmt::format("tools/call {} without a tool scope", registry_name),
                  fmt::format(R"({{"required_scope":{}}})", quote("tool:" + registry_name)));
    return fail(kInvalidParams, fmt::format("Tool {} is not permitted: the request lacks scope tool:{}", requested,
                                            registry_name),
                fmt::format(R"({{"tool":{},"required_scope":{}}})", quote(requested), quote("tool:" + registry_name)));
  }
  auto call = std::make_shared<CallState>();
  call->exchange = exchange;
  call->id = m.id;
  call->progress_token = std::move(token);
  call->tool = registry_name;
  if (!session->add_call(call)) {
    return fail(kInvalidRequest, fmt::format("Invalid Request: request id {} is already used by a running call", m.id));
  }
  // The request document dies when the handler returns (SSE replies outlive
  // it), so the job owns a copy of the arguments.
  auto args = std::make_shared<Json>(arguments != nullptr && arguments->IsObject() ? json::copy(*arguments)
                                                                                   : json::object());
  const bool known_output = tool != nullptr;
  const bool has_output = tool != nullptr && tool->has_output_schema;
  const bool validation_as_result = session->protocol_version() >= std::string_view("2025-11-25");
  auto job = [self = shared_from_this(), session, call, args, requested, known_output, has_output,
              validation_as_result] {
    McpToolContext context(session, call, self->config_.max_ask_timeout);
    Result<Json> result = self->tools_.call(call->tool, *args, &context);
    bool output_schema = has_output;
    if (!known_output && result) {
      auto info = self->tools_.get(call->tool);  // loaded lazily by this very call
      output_schema = info && info->output_schema != nullptr;
    }
    CallOutcome outcome = call_outcome(requested, output_schema, result, validation_as_result);
    session->remove_call(call->id);
    if (!call->settle()) return;  // cancelled: no response
    call->exchange->respond(outcome.protocol_error
                                ? error_message(call->id, outcome.code, outcome.message, outcome.data_json)
                                : result_message(call->id, outcome.result_json));
  };
  if (!workers_.submit(std::move(job))) {
    session->remove_call(call->id);
    if (call->settle()) fail(kInternalError, "Internal error: the server is shutting down");
  }
}

// ---- GET and DELETE -------------------------------------------------------------

std::optional<Response> McpServer::refuse_version(const Request& request) const {
  if (!request.headers.has(kVersionHeader) || supported_version(request.header(kVersionHeader))) return std::nullopt;
  return http_error(400, kConnectionError,
                    fmt::format("Bad Request: unsupported MCP-Protocol-Version \"{}\" (supported: {})",
                                std::string(request.header(kVersionHeader).substr(0, 40)), supported_list()));
}

Response McpServer::get(Request& request) {
  if (!accepts(request.header("Accept"), "text/event-stream")) {
    return http_error(406, kConnectionError, "Not Acceptable: Accept must include text/event-stream");
  }
  if (auto refused = refuse_version(request)) return std::move(*refused);
  Response error;
  auto session = session_of(request, error);
  if (!session) return error;
  std::vector<StoredEvent> replay;
  if (request.headers.has("Last-Event-ID")) {
    // Resumption: the events after that id, of the stream it belongs to.
    const std::string_view last = request.header("Last-Event-ID");
    const EventStore& store = *session->events();
    if (!store.limits().enabled()) {
      return http_error(400, kConnectionError,
                        "Bad Request: this server keeps no SSE events (ORDINAUT_MCP_EVENT_STORE_EVENTS or "
                        "ORDINAUT_MCP_EVENT_STORE_BYTES is 0), so Last-Event-ID cannot be resumed");
    }
    auto found = store.after(last);
    if (found.status == EventStore::Status::ok && found.stream != kStandaloneStream) {
      Response resumed;
      if (auto exchange = session->find_exchange(found.stream)) {
        found.status = exchange->resume(last, resumed);
      } else {
        // Every request of that POST is answered: the store holds the rest.
        resumed = Response::event_stream([events = std::move(found.events)](StreamSink& sink) {
          for (const auto& event : events) {
            if (!sink.write(sse_stored(event))) return;
          }
        });
      }
      if (found.status == EventStore::Status::ok) {
        resumed.headers.set(std::string(kSessionHeader), session->id());
        return resumed;
      }
    }
    if (found.status != EventStore::Status::ok) {
      logger_.log(LogLevel::debug, "mcp_resume_refused",
                  fmt::format("session {}: {}", session->id(), store.explain(found, last)));
      return http_error(400, kConnectionError, "Bad Request: " + store.explain(found, last));
    }
    replay = std::move(found.events);  // the standalone stream: replayed below, once claimed
  }
  const std::uint64_t token = session->claim_stream();
  if (token == 0) {
    return http_error(409, kConnectionError, "Conflict: only one SSE stream is allowed per session");
  }
  // The claim goes back when the producer ends or is dropped unrun (client
  // gone before the headers were written).
  struct Claim {
    std::shared_ptr<Session> session;
    std::uint64_t token;
    ~Claim() { session->release_stream(token); }
  };
  std::shared_ptr<Claim> claim(new Claim{session, token});
  Response response = Response::event_stream([claim, keepalive = config_.keepalive,
                                               replay = std::move(replay)](StreamSink& sink) mutable {
    claim->session->run_stream(sink, keepalive, std::move(replay));
    claim->session->release_stream(claim->token);
  });
  response.headers.set(std::string(kSessionHeader), session->id());
  return response;
}

Response McpServer::del(Request& request) {
  if (auto refused = refuse_version(request)) return std::move(*refused);
  Response error;
  auto session = session_of(request, error);
  if (!session) return error;
  sessions_.remove(session->id());
  Response response;
  response.status = 200;
  return response;
}

}  // namespace ordinaut::mcp_http
