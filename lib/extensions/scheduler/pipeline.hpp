// Pipelines of the scheduler: a task's payload.pipeline, in the original
// Ordinaut step format, parsed, checked against the tool registry when the
// task is created, and run step by step as REAL tool calls.
//
// A step (every field but `uses` optional):
//   {"id": "fetch", "uses": "ext.x.get", "with": {"q": "${params.q}"},
//    "save_as": "page", "if": "params.enabled && steps.prev.ok",
//    "timeout_seconds": 30, "max_retries": 2}
// - id: [A-Za-z0-9_.-]{1,64}, unique; default "step-N" (N = index + 1);
// - uses: the registry name of the tool to call;
// - with: the tool's arguments, an object whose string values may hold
//   templates (template.hpp); default {};
// - save_as: [A-Za-z_][A-Za-z0-9_-]{0,63}, unique; the step's output becomes
//   `steps.<save_as>` for later steps' templates and conditions;
// - if: a condition (condition.hpp); when false the step is skipped;
// - timeout_seconds: (0, 86400]; max_retries: 0..100 (default: the task's).
// Unknown fields are refused, so that a typo does not silently do nothing.
//
// Execution (run_pipeline): steps run in order on the calling thread. Each
// step renders `with` against the scope {"params", "steps", "now", "event"},
// then calls the tool through ToolView::call, which validates the arguments
// against the tool's input schema. A failed attempt is retried up to
// max_retries times, waiting the backoff in between (interruptibly). Errors
// that retrying cannot fix are not retried: template_error, invalid_input,
// tool_not_found. Timeouts and cancellation are cooperative: the ToolContext
// the tool gets answers cancelled() == true once the attempt's deadline has
// passed or the run is cancelled; a tool that returns after that is timed out
// (a failed attempt, retried) or cancelled (not retried; the run ends
// `cancelled`), whatever it returned. A tool that never looks at cancelled()
// cannot be interrupted; its step is judged when it returns.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ordinaut/json.hpp>
#include <ordinaut/result.hpp>
#include <ordinaut/tools.hpp>

#include "condition.hpp"
#include "template.hpp"

namespace ordinaut::scheduler {

inline constexpr std::size_t kMaxPipelineSteps = 100;
inline constexpr int kMaxStepRetries = 100;
inline constexpr double kMaxStepTimeoutSeconds = 86400;

struct Step {
  std::string id, uses, save_as, if_expr;
  Json with;  ///< always an object
  std::optional<double> timeout_seconds;
  std::optional<int> max_retries;
};

struct Pipeline {
  std::vector<Step> steps;
};

/// Parses payload.pipeline (an array of steps). Errors carry `pointer`
/// relative to `base_pointer` (e.g. "/payload/pipeline/1/uses") and codes
/// "invalid_pipeline" (shape, missing uses, duplicate id or save_as, bad
/// numbers, unknown fields), "template_error" (template syntax or unknown
/// root) and "invalid_condition" (bad `if`, with the column).
Result<Pipeline> parse_pipeline(const JsonValue& steps, std::string_view base_pointer);

/// Create-time checks against the registry, first problem wins:
/// - "unknown_tool": `uses` names no registered tool (exact name in the message);
/// - "template_error": `${params...}` that does not resolve in `params`,
///   `${steps.y...}` (or a condition reading steps.y) where no EARLIER step
///   saves y;
/// - "invalid_input": arguments holding no template that fail the tool's
///   input schema (pointer into `with`). Arguments with templates are checked
///   when the step runs, once rendered.
/// Condition paths into params are not checked: a condition may test an
/// optional parameter, which reads as null when absent.
Result<void> check_pipeline(const Pipeline& pipeline, const JsonValue& params, const ToolView& tools,
                            std::string_view base_pointer);

/// Wait before retry N (1 = the first retry) of a failed step.
///   exponential_jitter (default): uniform in [0, min(cap, base * 2^(N-1))] ("full jitter")
///   exponential:                   min(cap, base * 2^(N-1))
///   linear:                        min(cap, base * N)
///   fixed:                         base
///   none:                          0
/// base 1 s and cap 300 s unless constructed otherwise.
class Backoff {
 public:
  enum class Kind { exponential_jitter, exponential, linear, fixed, none };
  static constexpr std::chrono::milliseconds kDefaultBase{1000};
  static constexpr std::chrono::milliseconds kDefaultCap{300000};

  Backoff() = default;
  explicit Backoff(Kind kind, std::chrono::milliseconds base = kDefaultBase,
                   std::chrono::milliseconds cap = kDefaultCap);

  /// By name, as in a task's backoff_strategy; "invalid_backoff" otherwise.
  static Result<Backoff> parse(std::string_view name);

  /// The delay before retry `retry` (< 1 gives 0); `random` is a uniformly
  /// random number, used by exponential_jitter only.
  std::chrono::milliseconds delay(int retry, std::uint64_t random) const;

  Kind kind() const { return kind_; }
  std::string_view name() const;
  std::chrono::milliseconds base() const { return base_; }
  std::chrono::milliseconds cap() const { return cap_; }

 private:
  Kind kind_ = Kind::exponential_jitter;
  std::chrono::milliseconds base_ = kDefaultBase;
  std::chrono::milliseconds cap_ = kDefaultCap;
};

/// Cancels a run from another thread. Thread-safe; cancel() is final.
class CancelToken {
 public:
  void cancel();
  bool cancelled() const;
  /// Waits up to `duration`; returns true when it elapsed without a cancel,
  /// false as soon as the token is (or already was) cancelled.
  bool wait_for(std::chrono::milliseconds duration) const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::atomic<bool> cancelled_{false};
};

/// `running` only in StepObserver::started.
enum class StepStatus { running, succeeded, failed, skipped, cancelled, timed_out };
enum class RunStatus { succeeded, failed, cancelled };
std::string_view to_string(StepStatus status);
std::string_view to_string(RunStatus status);

struct StepResult {
  std::string id, uses;
  StepStatus status = StepStatus::running;
  Json input;                      ///< the rendered arguments; null when not rendered (skipped, template error)
  Json output;                     ///< the tool's output; null unless succeeded
  int attempts = 0;                ///< tool calls made
  std::int64_t started_at_ms = 0;  ///< wall clock (RunOptions::now_ms)
  std::int64_t duration_ms = 0;    ///< steady clock, retries and waits included
  std::optional<Error> error;      ///< the last attempt's error
};

struct RunResult {
  RunStatus status = RunStatus::succeeded;
  std::string failed_step;        ///< failed or cancelled: the step's id ("" when cancelled between steps)
  std::optional<Error> error;     ///< failed or cancelled: what happened (message names the step)
  std::vector<StepResult> steps;  ///< the steps reached, in order
};

/// {"id","uses","status","attempts","started_at_ms","duration_ms","input","output","error"}
/// with error null or {"code","message"[,"pointer"]}.
Json to_json(const StepResult& step);
/// {"status","failed_step","error","steps":[...]}.
Json to_json(const RunResult& run);
/// Just the steps array (RunRecord::steps).
Json steps_to_json(const RunResult& run);

/// Waits a backoff delay; returns false when cancelled. The default is
/// CancelToken::wait_for; tests inject one that records and returns at once.
using SleepFunction = std::function<bool(std::chrono::milliseconds, const CancelToken&)>;

struct RunOptions {
  int max_retries = 0;                    ///< the task's; a step's own max_retries wins
  Backoff backoff;                        ///< the task's backoff_strategy
  std::optional<double> timeout_seconds;  ///< for steps without timeout_seconds; none: no timeout
  std::function<std::int64_t()> now_ms;   ///< wall clock, Unix ms (started_at_ms, ${now}); default system_clock
  std::function<std::uint64_t()> random;  ///< jitter source; default a per-thread mt19937_64
  SleepFunction sleep;                    ///< default CancelToken::wait_for
};

/// Callbacks on the running thread (keep them short).
/// - started: before a step's first tool call (input rendered);
/// - finished: once per step reached, skipped ones included;
/// - retrying: after a failed attempt, before the backoff wait (`error` set);
/// - log: the tool's ToolContext::log.
struct StepObserver {
  std::function<void(const StepResult&)> started, finished;
  std::function<void(const StepResult&, std::chrono::milliseconds delay)> retrying;
  std::function<void(const StepResult&, std::string_view level, std::string_view message)> log;
};

/// Runs a parsed pipeline; see the top of this file. `event` is the event
/// that started the run, or null. Never throws (a throwing tool becomes
/// "tool_failed" in the registry; observers must not throw).
RunResult run_pipeline(const Pipeline& pipeline, const JsonValue& params, const JsonValue* event, const ToolView& tools,
                       const RunOptions& options, CancelToken& token, const StepObserver& observer);

/// "2026-11-26T12:00:00.123Z" for a Unix time in milliseconds (what ${now} gives).
std::string format_rfc3339_ms(std::int64_t unix_ms);

}  // namespace ordinaut::scheduler
