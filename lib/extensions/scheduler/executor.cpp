// The pipeline executor: renders each step, calls its tool through the
// registry with retries and backoff, and enforces cooperative timeouts and
// cancellation. See pipeline.hpp for the behaviour.
#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "pipeline.hpp"

namespace ordinaut::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

// Errors that a retry cannot fix: the same input fails the same way.
bool retryable(const Error& error) {
  return error.code != "template_error" && error.code != "invalid_input" && error.code != "tool_not_found";
}

// What the tool sees: cancelled() turns true when the run is cancelled or
// the attempt's deadline passes; log() goes to the observer.
class StepContext final : public ToolContext {
 public:
  StepContext(const CancelToken& token, std::optional<Clock::time_point> deadline, const StepObserver& observer,
              const StepResult& step)
      : token_(token), deadline_(deadline), observer_(observer), step_(step) {}

  void log(std::string_view level, std::string_view message) override {
    if (observer_.log) observer_.log(step_, level, message);
  }
  bool cancelled() const override { return token_.cancelled() || expired(); }
  bool expired() const { return deadline_ && Clock::now() >= *deadline_; }

 private:
  const CancelToken& token_;
  std::optional<Clock::time_point> deadline_;
  const StepObserver& observer_;
  const StepResult& step_;
};

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::uint64_t thread_random() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return engine();
}

std::string seconds_text(double seconds) { return fmt::format("{:g} s", seconds); }

Error cancelled_error(const Step& step) {
  return make_error("cancelled", fmt::format("step \"{}\" was cancelled", step.id));
}

class Executor {
 public:
  Executor(const JsonValue& params, const JsonValue* event, const ToolView& tools, const RunOptions& options,
           CancelToken& token, const StepObserver& observer)
      : tools_(tools), options_(options), token_(token), observer_(observer) {
    auto& alloc = scope_.GetAllocator();
    scope_.SetObject();
    scope_.AddMember("params", JsonValue().CopyFrom(params, alloc), alloc);
    scope_.AddMember("steps", JsonValue(rapidjson::kObjectType), alloc);
    scope_.AddMember("now", JsonValue(""), alloc);
    JsonValue event_value;
    if (event != nullptr) event_value.CopyFrom(*event, alloc);
    scope_.AddMember("event", event_value, alloc);
  }

  RunResult run(const Pipeline& pipeline) {
    RunResult result;
    for (const Step& step : pipeline.steps) {
      if (token_.cancelled()) {
        result.status = RunStatus::cancelled;
        result.error = make_error("cancelled", fmt::format("the run was cancelled before step \"{}\"", step.id));
        break;
      }
      result.steps.push_back(run_step(step));
      const StepResult& done = result.steps.back();
      if (done.status == StepStatus::succeeded || done.status == StepStatus::skipped) continue;
      result.status = done.status == StepStatus::cancelled ? RunStatus::cancelled : RunStatus::failed;
      result.failed_step = step.id;
      Error e = done.error.value_or(make_error("step_failed", "the step failed"));
      if (done.status != StepStatus::cancelled) {
        e.message = fmt::format("step \"{}\" ({}) failed after {} attempt{}: {}", step.id, step.uses, done.attempts,
                                done.attempts == 1 ? "" : "s", e.message);
      }
      result.error = std::move(e);
      break;
    }
    return result;
  }

 private:
  std::int64_t now_ms() const { return options_.now_ms ? options_.now_ms() : system_now_ms(); }

  bool sleep(std::chrono::milliseconds delay) const {
    if (options_.sleep) return options_.sleep(delay, token_) && !token_.cancelled();
    return token_.wait_for(delay);
  }

  StepResult run_step(const Step& step) {
    StepResult r;
    r.id = step.id;
    r.uses = step.uses;
    r.started_at_ms = now_ms();
    const auto start = Clock::now();
    finish_step(step, r);
    r.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    if (observer_.finished) observer_.finished(r);
    if (r.status == StepStatus::succeeded && !step.save_as.empty()) {
      auto& alloc = scope_.GetAllocator();
      JsonValue& steps = scope_["steps"];
      steps.AddMember(JsonValue(step.save_as.data(), static_cast<rapidjson::SizeType>(step.save_as.size()), alloc),
                      JsonValue().CopyFrom(r.output, alloc), alloc);
    }
    return r;
  }

  // Decides the step's status: condition, rendering, then the attempts.
  void finish_step(const Step& step, StepResult& r) {
    auto& alloc = scope_.GetAllocator();
    const std::string now = format_rfc3339_ms(r.started_at_ms);
    scope_["now"].SetString(now.data(), static_cast<rapidjson::SizeType>(now.size()), alloc);

    if (!step.if_expr.empty()) {
      auto condition = Condition::parse(step.if_expr);
      Result<bool> holds = condition ? condition->evaluate(scope_) : Result<bool>(condition.error());
      if (!holds) {
        r.status = StepStatus::failed;
        r.error = holds.error();
        r.error->pointer = "/if";
        return;
      }
      if (!*holds) {
        r.status = StepStatus::skipped;
        return;
      }
    }

    auto input = render(step.with, scope_);
    if (!input) {
      r.status = StepStatus::failed;
      r.error = input.error();
      r.error->pointer = "/with" + r.error->pointer;
      return;
    }
    r.input = std::move(*input);
    if (observer_.started) observer_.started(r);

    const int max_retries = std::clamp(step.max_retries.value_or(options_.max_retries), 0, kMaxStepRetries);
    const std::optional<double> timeout = step.timeout_seconds ? step.timeout_seconds : options_.timeout_seconds;
    for (int attempt = 1;; ++attempt) {
      r.attempts = attempt;
      r.status = StepStatus::running;
      std::optional<Clock::time_point> deadline;
      if (timeout) {
        deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*timeout));
      }
      StepContext context(token_, deadline, observer_, r);
      auto output = tools_.call(step.uses, r.input, &context);
      if (token_.cancelled()) {
        r.status = StepStatus::cancelled;
        r.error = cancelled_error(step);
        return;
      }
      if (context.expired()) {
        r.status = StepStatus::timed_out;
        r.error = make_error("step_timeout", fmt::format("step \"{}\" did not finish within {} (attempt {})", step.id,
                                                         seconds_text(*timeout), attempt));
      } else if (output) {
        r.status = StepStatus::succeeded;
        r.output = std::move(*output);
        r.error.reset();
        return;
      } else {
        r.status = StepStatus::failed;
        r.error = output.error();
      }
      if (attempt > max_retries || !retryable(*r.error)) return;
      const auto delay = options_.backoff.delay(attempt, options_.random ? options_.random() : thread_random());
      if (observer_.retrying) observer_.retrying(r, delay);
      if (!sleep(delay)) {
        r.status = StepStatus::cancelled;
        r.error = cancelled_error(step);
        return;
      }
    }
  }

  Json scope_;
  const ToolView& tools_;
  const RunOptions& options_;
  CancelToken& token_;
  const StepObserver& observer_;
};

}  // namespace

RunResult run_pipeline(const Pipeline& pipeline, const JsonValue& params, const JsonValue* event, const ToolView& tools,
                       const RunOptions& options, CancelToken& token, const StepObserver& observer) {
  Executor executor(params, event, tools, options, token, observer);
  return executor.run(pipeline);
}

}  // namespace ordinaut::scheduler
