// Pipelines: parsing the step format, create-time checks against the tool
// registry, backoff, the cancel token and the JSON form of results. The
// executor is in executor.cpp.
#include "pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

namespace ordinaut::scheduler {
namespace {

Error pipeline_error(std::string code, std::string message, std::string pointer) {
  Error e = make_error(std::move(code), std::move(message));
  e.pointer = std::move(pointer);
  return e;
}

// `e`, about the value of a step's `field`: the message names the field, the
// pointer (relative to the field, if any) becomes relative to the base.
Error in_field(Error e, const std::string& where, const std::string& pointer, const char* field) {
  e.message = fmt::format("{}.{}: {}", where, field, e.message);
  e.pointer = pointer + "/" + field + e.pointer;
  return e;
}

bool is_name_char(char c) noexcept { return is_path_char(c) || c == '.'; }

bool valid_id(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), is_name_char);
}

bool valid_save_as(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  const char c = name.front();
  if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')) return false;
  return std::all_of(name.begin(), name.end(), is_path_char);
}

bool valid_tool_name(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), is_name_char);
}

constexpr std::string_view kStepFields[] = {"id", "uses", "with", "save_as", "if", "timeout_seconds", "max_retries"};

// A string member, or an error when present with another type. nullopt when absent.
Result<std::optional<std::string>> string_field(const JsonValue& step, const char* name, const std::string& where,
                                                const std::string& pointer) {
  auto it = step.FindMember(name);
  if (it == step.MemberEnd()) return std::optional<std::string>{};
  if (!it->value.IsString()) {
    return pipeline_error("invalid_pipeline",
                          fmt::format("{}.{} must be a string, not {}", where, name, json::type_name(it->value)),
                          pointer + "/" + name);
  }
  return std::optional<std::string>(std::string(it->value.GetString(), it->value.GetStringLength()));
}

// A name-like string field: nullopt when absent, an error when it breaks its
// rule (`rule` says what is allowed).
Result<std::optional<std::string>> name_field(const JsonValue& step, const char* name, bool (*valid)(std::string_view),
                                              std::string_view rule, const std::string& where,
                                              const std::string& pointer) {
  auto field = string_field(step, name, where, pointer);
  if (!field || !field->has_value() || valid(**field)) return field;
  return pipeline_error("invalid_pipeline",
                        fmt::format("{}.{} \"{}\" is not valid: {}", where, name, excerpt(**field), rule),
                        pointer + "/" + name);
}

Result<Step> parse_step(const JsonValue& value, std::size_t index, const std::string& pointer) {
  const std::string where = fmt::format("pipeline[{}]", index);
  if (!value.IsObject()) {
    return pipeline_error("invalid_pipeline",
                          fmt::format("{} must be an object (a step), not {}", where, json::type_name(value)), pointer);
  }
  for (const auto& m : value.GetObject()) {
    std::string_view name(m.name.GetString(), m.name.GetStringLength());
    if (std::find(std::begin(kStepFields), std::end(kStepFields), name) == std::end(kStepFields)) {
      std::string p = pointer;
      p += "/" + json::pointer_token(name);
      return pipeline_error("invalid_pipeline",
                            fmt::format("{} has an unknown field \"{}\"; a step has id, uses, with, save_as, if, "
                                        "timeout_seconds and max_retries",
                                        where, excerpt(name)),
                            p);
    }
  }
  Step step;

  auto id = name_field(value, "id", valid_id, "use 1 to 64 letters, digits, '_', '-' or '.'", where, pointer);
  if (!id) return id.error();
  step.id = id->value_or(fmt::format("step-{}", index + 1));

  auto uses = name_field(value, "uses", valid_tool_name, "a tool name has 1 to 128 letters, digits, '_', '-' or '.'",
                         where, pointer);
  if (!uses) return uses.error();
  if (!uses->has_value()) {
    return pipeline_error("invalid_pipeline",
                          fmt::format("{}.uses is required: the registry name of the tool the step calls", where),
                          pointer + "/uses");
  }
  step.uses = **uses;

  auto save_as = name_field(value, "save_as", valid_save_as,
                            "a letter or '_', then up to 63 letters, digits, '_' or '-'", where, pointer);
  if (!save_as) return save_as.error();
  step.save_as = save_as->value_or("");

  auto if_expr = string_field(value, "if", where, pointer);
  if (!if_expr) return if_expr.error();
  if (if_expr->has_value()) {
    auto condition = Condition::parse(**if_expr);
    if (!condition) return in_field(condition.error(), where, pointer, "if");
    step.if_expr = **if_expr;
  }

  step.with.SetObject();
  if (auto it = value.FindMember("with"); it != value.MemberEnd()) {
    if (!it->value.IsObject()) {
      return pipeline_error(
          "invalid_pipeline",
          fmt::format("{}.with must be an object (the tool's arguments), not {}", where, json::type_name(it->value)),
          pointer + "/with");
    }
    auto templates = for_each_template(
        it->value, [](const std::string&, const std::vector<TemplatePiece>&) { return Result<void>{}; });
    if (!templates) return in_field(templates.error(), where, pointer, "with");
    step.with.CopyFrom(it->value, step.with.GetAllocator());
  }

  if (auto it = value.FindMember("timeout_seconds"); it != value.MemberEnd()) {
    const JsonValue& t = it->value;
    if (!t.IsNumber() || !std::isfinite(t.GetDouble()) || t.GetDouble() <= 0 ||
        t.GetDouble() > kMaxStepTimeoutSeconds) {
      return pipeline_error(
          "invalid_pipeline",
          fmt::format("{}.timeout_seconds must be a number above 0 and at most {}", where, kMaxStepTimeoutSeconds),
          pointer + "/timeout_seconds");
    }
    step.timeout_seconds = t.GetDouble();
  }

  if (auto it = value.FindMember("max_retries"); it != value.MemberEnd()) {
    const JsonValue& r = it->value;
    if (!r.IsInt() || r.GetInt() < 0 || r.GetInt() > kMaxStepRetries) {
      return pipeline_error("invalid_pipeline",
                            fmt::format("{}.max_retries must be an integer from 0 to {}", where, kMaxStepRetries),
                            pointer + "/max_retries");
    }
    step.max_retries = r.GetInt();
  }
  return step;
}

// Checks that a path read by step `index` can resolve before anything runs.
// `params_scope` is {"params": params}; `saved_at` maps save_as to the step
// index that saves it.
Result<void> check_path(const ScopePath& path, std::size_t index, const JsonValue& params_scope,
                        const std::map<std::string, std::size_t, std::less<>>& saved_at, bool check_params) {
  if (path.root == "params" && check_params) {
    std::string why;
    if (resolve_path(params_scope, path, &why) == nullptr) return make_error("template_error", why);
  } else if (path.root == "steps" && !path.segments.empty()) {
    const std::string& name = path.segments.front();
    auto it = saved_at.find(name);
    if (it == saved_at.end()) {
      return make_error("template_error",
                        fmt::format("no step saves \"{}\" (steps.<name> reads a step's save_as)", name));
    }
    if (it->second >= index) {
      return make_error(
          "template_error",
          fmt::format("\"{}\" is saved by pipeline[{}], which does not run before this step", name, it->second));
    }
  }
  return {};
}

}  // namespace

Result<Pipeline> parse_pipeline(const JsonValue& steps, std::string_view base_pointer) {
  const std::string base(base_pointer);
  if (!steps.IsArray()) {
    return pipeline_error("invalid_pipeline",
                          fmt::format("the pipeline must be an array of steps, not {}", json::type_name(steps)), base);
  }
  if (steps.Size() > kMaxPipelineSteps) {
    return pipeline_error(
        "invalid_pipeline",
        fmt::format("the pipeline has {} steps; at most {} are allowed", steps.Size(), kMaxPipelineSteps), base);
  }
  Pipeline pipeline;
  std::map<std::string, std::size_t, std::less<>> ids;
  std::map<std::string, std::size_t, std::less<>> saves;
  for (rapidjson::SizeType i = 0; i < steps.Size(); ++i) {
    const std::string pointer = fmt::format("{}/{}", base, i);
    auto step = parse_step(steps[i], i, pointer);
    if (!step) return step.error();
    if (auto [it, inserted] = ids.emplace(step->id, i); !inserted) {
      return pipeline_error(
          "invalid_pipeline",
          fmt::format("pipeline[{}].id \"{}\" is already the id of pipeline[{}]", i, step->id, it->second),
          pointer + (steps[i].HasMember("id") ? "/id" : ""));
    }
    if (!step->save_as.empty()) {
      if (auto [it, inserted] = saves.emplace(step->save_as, i); !inserted) {
        return pipeline_error(
            "invalid_pipeline",
            fmt::format("pipeline[{}].save_as \"{}\" is already saved by pipeline[{}]", i, step->save_as, it->second),
            pointer + "/save_as");
      }
    }
    pipeline.steps.push_back(std::move(*step));
  }
  return pipeline;
}

Result<void> check_pipeline(const Pipeline& pipeline, const JsonValue& params, const ToolView& tools,
                            std::string_view base_pointer) {
  Json params_scope(rapidjson::kObjectType);
  params_scope.AddMember("params", JsonValue(params, params_scope.GetAllocator()), params_scope.GetAllocator());
  std::map<std::string, std::size_t, std::less<>> saved_at;
  for (std::size_t i = 0; i < pipeline.steps.size(); ++i) {
    if (!pipeline.steps[i].save_as.empty()) saved_at.emplace(pipeline.steps[i].save_as, i);
  }

  for (std::size_t i = 0; i < pipeline.steps.size(); ++i) {
    const Step& step = pipeline.steps[i];
    const std::string pointer = fmt::format("{}/{}", base_pointer, i);
    const std::string where = fmt::format("pipeline[{}]", i);

    auto info = tools.get(step.uses);
    if (!info) {
      return pipeline_error(
          "unknown_tool",
          fmt::format("{} (id \"{}\") uses \"{}\", which is not a registered tool", where, step.id, step.uses),
          pointer + "/uses");
    }

    auto templates = for_each_template(step.with, [&](const std::string&, const std::vector<TemplatePiece>& pieces) {
      for (const auto& piece : pieces) {
        if (!piece.is_path) continue;
        auto r = check_path(piece.path, i, params_scope, saved_at, true);
        if (!r)
          return Result<void>(
              make_error("template_error", fmt::format("${{{}}}: {}", piece.path.text, r.error().message)));
      }
      return Result<void>{};
    });
    if (!templates) return in_field(templates.error(), where, pointer, "with");

    if (!step.if_expr.empty()) {
      auto condition = Condition::parse(step.if_expr);
      if (!condition) return in_field(condition.error(), where, pointer, "if");
      for (const auto& path : condition->paths()) {
        auto r = check_path(path, i, params_scope, saved_at, false);
        if (!r) {
          return pipeline_error("template_error",
                                fmt::format("{}.if reads {}: {}", where, path.text, r.error().message),
                                pointer + "/if");
        }
      }
    }

    if (!contains_template(step.with) && info->input_schema) {
      auto schema = JsonSchema::compile(*info->input_schema);
      if (!schema) {
        return pipeline_error(
            "invalid_tool",
            fmt::format("the input schema of \"{}\" does not compile: {}", step.uses, schema.error().message),
            pointer + "/uses");
      }
      if (auto valid = schema->validate(step.with); !valid) {
        return pipeline_error("invalid_input",
                              fmt::format("{}.with does not match the input schema of \"{}\": {}", where, step.uses,
                                          valid.error().message),
                              pointer + "/with" + valid.error().pointer);
      }
    }
  }
  return {};
}

// ---- Backoff ----

Backoff::Backoff(Kind kind, std::chrono::milliseconds base, std::chrono::milliseconds cap)
    : kind_(kind),
      base_(std::max(base, std::chrono::milliseconds(0))),
      cap_(std::max(cap, std::chrono::milliseconds(0))) {}

Result<Backoff> Backoff::parse(std::string_view name) {
  for (Kind kind : {Kind::exponential_jitter, Kind::exponential, Kind::linear, Kind::fixed, Kind::none}) {
    if (Backoff(kind).name() == name) return Backoff(kind);
  }
  return make_error("invalid_backoff",
                    fmt::format("backoff_strategy \"{}\" is not one of exponential_jitter, exponential, linear, "
                                "fixed, none",
                                excerpt(name)));
}

std::string_view Backoff::name() const {
  switch (kind_) {
    case Kind::exponential_jitter: return "exponential_jitter";
    case Kind::exponential: return "exponential";
    case Kind::linear: return "linear";
    case Kind::fixed: return "fixed";
    case Kind::none: return "none";
  }
  return "none";
}

std::chrono::milliseconds Backoff::delay(int retry, std::uint64_t random) const {
  using std::chrono::milliseconds;
  if (retry < 1 || kind_ == Kind::none) return milliseconds(0);
  const std::int64_t base = base_.count();
  const std::int64_t cap = cap_.count();
  switch (kind_) {
    case Kind::fixed: return base_;
    case Kind::linear: {
      // base * retry without overflow: retry <= INT_MAX, so compare first.
      if (base != 0 && retry > cap / base) return cap_;
      return milliseconds(std::min(cap, base * retry));
    }
    case Kind::exponential:
    case Kind::exponential_jitter: {
      std::int64_t value = base;
      for (int i = 1; i < retry && value < cap; ++i) value *= 2;  // stops at the cap: no overflow
      value = std::min(value, cap);
      if (kind_ == Kind::exponential) return milliseconds(value);
      return milliseconds(static_cast<std::int64_t>(random % (static_cast<std::uint64_t>(value) + 1)));
    }
    case Kind::none: break;
  }
  return milliseconds(0);
}

// ---- CancelToken ----

void CancelToken::cancel() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_.store(true);
  }
  cv_.notify_all();
}

bool CancelToken::cancelled() const { return cancelled_.load(); }

bool CancelToken::wait_for(std::chrono::milliseconds duration) const {
  // Bounded so that the clock arithmetic inside wait_for cannot overflow.
  duration = std::min(duration, std::chrono::milliseconds(std::chrono::hours(24 * 366)));
  std::unique_lock<std::mutex> lock(mutex_);
  return !cv_.wait_for(lock, duration, [this] { return cancelled_.load(); });
}

// ---- results ----

std::string_view to_string(StepStatus status) {
  switch (status) {
    case StepStatus::running: return "running";
    case StepStatus::succeeded: return "succeeded";
    case StepStatus::failed: return "failed";
    case StepStatus::skipped: return "skipped";
    case StepStatus::cancelled: return "cancelled";
    case StepStatus::timed_out: return "timed_out";
  }
  return "failed";
}

std::string_view to_string(RunStatus status) {
  switch (status) {
    case RunStatus::succeeded: return "succeeded";
    case RunStatus::failed: return "failed";
    case RunStatus::cancelled: return "cancelled";
  }
  return "failed";
}

namespace {

JsonValue string_value(std::string_view text, Json::AllocatorType& alloc) {
  return JsonValue(text.data(), static_cast<rapidjson::SizeType>(text.size()), alloc);
}

JsonValue error_value(const std::optional<Error>& error, Json::AllocatorType& alloc) {
  if (!error) return JsonValue(rapidjson::kNullType);
  JsonValue out(rapidjson::kObjectType);
  out.AddMember("code", string_value(error->code, alloc), alloc);
  out.AddMember("message", string_value(error->message, alloc), alloc);
  if (!error->pointer.empty()) out.AddMember("pointer", string_value(error->pointer, alloc), alloc);
  return out;
}

void fill_step(JsonValue& out, const StepResult& step, Json::AllocatorType& alloc) {
  out.SetObject();
  out.AddMember("id", string_value(step.id, alloc), alloc);
  out.AddMember("uses", string_value(step.uses, alloc), alloc);
  out.AddMember("status", string_value(to_string(step.status), alloc), alloc);
  out.AddMember("attempts", step.attempts, alloc);
  out.AddMember("started_at_ms", step.started_at_ms, alloc);
  out.AddMember("duration_ms", step.duration_ms, alloc);
  out.AddMember("input", JsonValue(step.input, alloc), alloc);
  out.AddMember("output", JsonValue(step.output, alloc), alloc);
  out.AddMember("error", error_value(step.error, alloc), alloc);
}

JsonValue step_value(const StepResult& step, Json::AllocatorType& alloc) {
  JsonValue out;
  fill_step(out, step, alloc);
  return out;
}

}  // namespace

Json to_json(const StepResult& step) {
  Json out;
  fill_step(out, step, out.GetAllocator());
  return out;
}

Json steps_to_json(const RunResult& run) {
  Json out(rapidjson::kArrayType);
  for (const auto& step : run.steps) out.PushBack(step_value(step, out.GetAllocator()), out.GetAllocator());
  return out;
}

Json to_json(const RunResult& run) {
  Json out(rapidjson::kObjectType);
  auto& alloc = out.GetAllocator();
  out.AddMember("status", string_value(to_string(run.status), alloc), alloc);
  out.AddMember("failed_step", string_value(run.failed_step, alloc), alloc);
  out.AddMember("error", error_value(run.error, alloc), alloc);
  JsonValue steps(rapidjson::kArrayType);
  for (const auto& step : run.steps) steps.PushBack(step_value(step, alloc), alloc);
  out.AddMember("steps", steps, alloc);
  return out;
}

std::string format_rfc3339_ms(std::int64_t unix_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(unix_ms)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> hms{t - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                     hms.minutes().count(), hms.seconds().count(), hms.subseconds().count());
}

}  // namespace ordinaut::scheduler
