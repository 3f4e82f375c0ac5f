#include "distributed/pipeline_schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status.h"

namespace sluice {
namespace pipeline {
namespace {

constexpr double kNever = std::numeric_limits<double>::infinity();

absl::Status CheckShape(int stages, int micro_batches) {
  if (stages < 1 || micro_batches < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a pipeline needs at least one stage and one micro-batch, got ", stages,
                     " stage(s) and ", micro_batches, " micro-batch(es)"));
  }
  return absl::OkStatus();
}

Action F(int stage, int mb) { return Action{stage, Action::Type::kForward, mb}; }
Action B(int stage, int mb) { return Action{stage, Action::Type::kBackward, mb}; }

// One stage per worker, stage s on worker s.
Schedule OneStagePerWorker(int p, int m) {
  Schedule s;
  s.num_stages = p;
  s.num_micro_batches = m;
  s.actions.resize(p);
  for (int i = 0; i < p; ++i) s.worker_of_stage.push_back(i);
  return s;
}

double CostOf(const std::vector<double>& v, int stage) { return v.size() == 1 ? v[0] : v[stage]; }
int64_t BytesOf(const std::vector<int64_t>& v, int stage) {
  return v.size() == 1 ? v[0] : v[stage];
}

}  // namespace

std::string Action::ToString() const {
  return absl::StrCat(stage, type == Type::kForward ? "F" : "B", micro_batch);
}

absl::StatusOr<Action> Action::Parse(absl::string_view text) {
  const absl::string_view t = absl::StripAsciiWhitespace(text);
  const size_t at = t.find_first_of("FB");
  int stage = 0, mb = 0;
  if (at == absl::string_view::npos || !absl::SimpleAtoi(t.substr(0, at), &stage) ||
      !absl::SimpleAtoi(t.substr(at + 1), &mb) || stage < 0 || mb < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", t, "' is not an action (stage, F or B, micro-batch: \"2F0\")"));
  }
  return Action{stage, t[at] == 'F' ? Type::kForward : Type::kBackward, mb};
}

std::string Schedule::ToCsv() const {
  std::string out;
  for (const std::vector<Action>& row : actions) {
    absl::StrAppend(
        &out,
        absl::StrJoin(row, ",",
                      [](std::string* o, const Action& a) { absl::StrAppend(o, a.ToString()); }),
        "\n");
  }
  return out;
}

absl::Status Schedule::Validate() const {
  SLUICE_RETURN_IF_ERROR(CheckShape(num_stages, num_micro_batches));
  if (static_cast<int>(worker_of_stage.size()) != num_stages) {
    return absl::InvalidArgumentError(absl::StrCat("the schedule places ", worker_of_stage.size(),
                                                   " stage(s) but has ", num_stages));
  }
  for (int s = 0; s < num_stages; ++s) {
    if (worker_of_stage[s] < 0 || worker_of_stage[s] >= num_workers()) {
      return absl::InvalidArgumentError(
          absl::StrCat("stage ", s, " is on worker ", worker_of_stage[s], " of ", num_workers()));
    }
  }
  // (stage, type, micro-batch) -> its position in its worker's list.
  std::map<std::tuple<int, int, int>, int> seen;
  for (int w = 0; w < num_workers(); ++w) {
    for (size_t i = 0; i < actions[w].size(); ++i) {
      const Action& a = actions[w][i];
      if (a.stage >= num_stages || a.micro_batch >= num_micro_batches) {
        return absl::InvalidArgumentError(
            absl::StrCat("worker ", w, " action ", i, " (", a.ToString(), ") is outside ",
                         num_stages, " stages x ", num_micro_batches, " micro-batches"));
      }
      if (worker_of_stage[a.stage] != w) {
        return absl::InvalidArgumentError(absl::StrCat("worker ", w, " runs ", a.ToString(),
                                                       " but stage ", a.stage, " is on worker ",
                                                       worker_of_stage[a.stage]));
      }
      const auto key = std::make_tuple(a.stage, static_cast<int>(a.type), a.micro_batch);
      if (!seen.emplace(key, static_cast<int>(i)).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("worker ", w, " runs ", a.ToString(), " twice"));
      }
      if (a.type == Action::Type::kBackward &&
          seen.find(std::make_tuple(a.stage, 0, a.micro_batch)) == seen.end()) {
        return absl::InvalidArgumentError(absl::StrCat("worker ", w, " runs ", a.ToString(),
                                                       " before ",
                                                       F(a.stage, a.micro_batch).ToString()));
      }
    }
  }
  for (int s = 0; s < num_stages; ++s) {
    for (int mb = 0; mb < num_micro_batches; ++mb) {
      for (int t : {0, 1}) {
        if (seen.count(std::make_tuple(s, t, mb)) == 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("the schedule never runs ", (t == 0 ? F(s, mb) : B(s, mb)).ToString()));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Schedule> ScheduleFromCsv(absl::string_view csv) {
  Schedule s;
  int stages = 0, mbs = 0;
  std::map<int, int> worker_of;
  for (absl::string_view line : absl::StrSplit(csv, '\n', absl::SkipWhitespace())) {
    const int w = s.num_workers();
    s.actions.emplace_back();
    for (absl::string_view cell : absl::StrSplit(line, ',', absl::SkipWhitespace())) {
      absl::StatusOr<Action> a = Action::Parse(cell);
      if (!a.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("schedule row ", w, ": ", a.status().message()));
      }
      auto [it, added] = worker_of.emplace(a->stage, w);
      if (!added && it->second != w) {
        return absl::InvalidArgumentError(
            absl::StrCat("stage ", a->stage, " appears on rows ", it->second, " and ", w));
      }
      stages = std::max(stages, a->stage + 1);
      mbs = std::max(mbs, a->micro_batch + 1);
      s.actions[w].push_back(*a);
    }
  }
  s.num_stages = stages;
  s.num_micro_batches = mbs;
  for (int st = 0; st < stages; ++st) {
    auto it = worker_of.find(st);
    s.worker_of_stage.push_back(it == worker_of.end() ? -1 : it->second);
  }
  SLUICE_RETURN_IF_ERROR(s.Validate());
  return s;
}

absl::StatusOr<Schedule> GPipe(int p, int m) {
  SLUICE_RETURN_IF_ERROR(CheckShape(p, m));
  Schedule s = OneStagePerWorker(p, m);
  for (int st = 0; st < p; ++st) {
    for (int mb = 0; mb < m; ++mb) s.actions[st].push_back(F(st, mb));
    for (int mb = 0; mb < m; ++mb) s.actions[st].push_back(B(st, mb));
  }
  return s;
}

absl::StatusOr<Schedule> OneFOneB(int p, int m) {
  SLUICE_RETURN_IF_ERROR(CheckShape(p, m));
  Schedule s = OneStagePerWorker(p, m);
  for (int st = 0; st < p; ++st) {
    // Warm-up, then one forward and one backward until the forwards run out, then cool-down.
    const int warmup = std::min(p - st - 1, m);
    int f = 0, b = 0;
    for (; f < warmup; ++f) s.actions[st].push_back(F(st, f));
    while (f < m) {
      s.actions[st].push_back(F(st, f++));
      s.actions[st].push_back(B(st, b++));
    }
    while (b < m) s.actions[st].push_back(B(st, b++));
  }
  return s;
}

absl::StatusOr<Schedule> Interleaved1F1B(int w, int v, int m) {
  SLUICE_RETURN_IF_ERROR(CheckShape(w * v, m));
  if (w < 1 || v < 1 || m % w != 0) {
    return absl::InvalidArgumentError(absl::StrCat("interleaved 1F1B needs the micro-batches (", m,
                                                   ") to be a multiple of the workers (", w, ")"));
  }
  Schedule s;
  s.num_stages = w * v;
  s.num_micro_batches = m;
  s.actions.resize(w);
  for (int st = 0; st < w * v; ++st) s.worker_of_stage.push_back(st % w);
  // Megatron's order: the k-th forward (backward) of a worker runs chunk (k / w) % v (counted
  // from the last chunk for backwards) on micro-batch (k / (w v)) w + k % w.
  const int total = m * v;
  const auto chunk = [&](int k, bool forward) {
    const int c = (k % (w * v)) / w;
    return forward ? c : v - 1 - c;
  };
  const auto micro_batch = [&](int k) { return (k / (w * v)) * w + k % w; };
  for (int r = 0; r < w; ++r) {
    const int warmup = std::min(total, (w - r - 1) * 2 + (v - 1) * w);
    int f = 0, b = 0;
    const auto forward = [&] {
      s.actions[r].push_back(F(chunk(f, true) * w + r, micro_batch(f)));
      ++f;
    };
    const auto backward = [&] {
      s.actions[r].push_back(B(chunk(b, false) * w + r, micro_batch(b)));
      ++b;
    };
    while (f < warmup) forward();
    while (f < total) {
      forward();
      backward();
    }
    while (b < total) backward();
  }
  SLUICE_RETURN_IF_ERROR(s.Validate());
  return s;
}

absl::StatusOr<Report> Simulate(const Schedule& schedule, const Costs& costs) {
  SLUICE_RETURN_IF_ERROR(schedule.Validate());
  const int S = schedule.num_stages, M = schedule.num_micro_batches, W = schedule.num_workers();
  for (const auto* v : {&costs.forward, &costs.backward}) {
    if (v->size() != 1 && static_cast<int>(v->size()) != S) {
      return absl::InvalidArgumentError(
          absl::StrCat("costs need one value or one per stage (", S, "), got ", v->size()));
    }
    for (double c : *v) {
      if (!(c >= 0) || std::isinf(c)) {
        return absl::InvalidArgumentError(absl::StrCat("a cost of ", c, " is not a duration"));
      }
    }
  }
  if (costs.activation_bytes.size() != 1 && static_cast<int>(costs.activation_bytes.size()) != S) {
    return absl::InvalidArgumentError("activation_bytes needs one value or one per stage");
  }
  if (costs.credits < 1 || !(costs.transfer >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("credits must be at least 1 and transfer non-negative, got ", costs.credits,
                     " and ", costs.transfer));
  }
  // start/end of each action, kNever until scheduled: [type][stage][micro-batch].
  std::vector<std::vector<std::vector<double>>> start(
      2, std::vector<std::vector<double>>(S, std::vector<double>(M, kNever)));
  std::vector<std::vector<std::vector<double>>> end = start;
  std::vector<size_t> next(W, 0);
  std::vector<double> free_at(W, 0);
  Report report;
  report.workers.resize(W);
  report.timeline.resize(W);
  // Per edge and direction, the sender's starts in order (credit reservations) and the
  // receiver's starts (releases), kept sorted.
  // Forward edge s -> s + 1 is index s; backward edge s -> s - 1 is index s - 1.
  std::vector<int> reserved[2];
  std::vector<std::vector<double>> released[2];
  for (int t : {0, 1}) {
    reserved[t].assign(std::max(S - 1, 0), 0);
    released[t].assign(std::max(S - 1, 0), {});
  }
  const auto type_of = [](const Action& a) { return a.type == Action::Type::kForward ? 0 : 1; };
  // What `a` waits for: the action it depends on (stage, type) and when it ends, or the edge
  // whose credit it needs. Returns its earliest start, or kNever with `why` filled.
  struct Wait {
    bool credit = false;
    Action on;  // The action it waits for (a dependency, or the receiver's next consumer).
  };
  const auto earliest = [&](int w, const Action& a, Wait* why) -> double {
    double t = free_at[w];
    const int tt = type_of(a);
    const auto dep = [&](int type, int stage, bool remote) -> bool {
      const double e = end[type][stage][a.micro_batch];
      if (e == kNever) {
        why->credit = false;
        why->on = Action{stage, type == 0 ? Action::Type::kForward : Action::Type::kBackward,
                         a.micro_batch};
        return false;
      }
      t = std::max(t, e + (remote ? costs.transfer : 0.0));
      return true;
    };
    if (tt == 0 && a.stage > 0) {
      if (!dep(0, a.stage - 1, schedule.worker_of_stage[a.stage - 1] != w)) return kNever;
    }
    if (tt == 1) {
      if (!dep(0, a.stage, false)) return kNever;
      if (a.stage < S - 1 && !dep(1, a.stage + 1, schedule.worker_of_stage[a.stage + 1] != w)) {
        return kNever;
      }
    }
    // The credit of the edge this action's output goes out on.
    const bool sends = tt == 0 ? a.stage < S - 1 : a.stage > 0;
    if (sends) {
      const int edge = tt == 0 ? a.stage : a.stage - 1;
      const int need = reserved[tt][edge] - costs.credits + 1;  // Releases needed first.
      if (need > 0) {
        const std::vector<double>& rel = released[tt][edge];
        if (static_cast<int>(rel.size()) < need) {
          why->credit = true;
          // The receiver's next action of that kind is what would release a credit.
          const int receiver = tt == 0 ? a.stage + 1 : a.stage - 1;
          int first = 0;
          const auto& starts = start[tt][receiver];
          while (first < M && starts[first] != kNever) ++first;
          why->on = Action{receiver, a.type, std::min(first, M - 1)};
          return kNever;
        }
        t = std::max(t, rel[need - 1]);
      }
    }
    return t;
  };
  int remaining = 0;
  for (const auto& list : schedule.actions) remaining += static_cast<int>(list.size());
  while (remaining > 0) {
    int best = -1;
    double best_t = kNever;
    std::vector<Wait> waits(W);
    for (int w = 0; w < W; ++w) {
      if (next[w] >= schedule.actions[w].size()) continue;
      const double t = earliest(w, schedule.actions[w][next[w]], &waits[w]);
      if (t < best_t) {
        best_t = t;
        best = w;
      }
    }
    if (best < 0) {
      // Deadlock: follow what each blocked worker waits for until a worker repeats.
      int w = 0;
      while (next[w] >= schedule.actions[w].size()) ++w;
      std::vector<int> path;
      std::set<int> on_path;
      while (on_path.insert(w).second) {
        path.push_back(w);
        w = schedule.worker_of_stage[waits[w].on.stage];
        if (next[w] >= schedule.actions[w].size()) break;  // Cannot happen: it would run.
      }
      const auto cycle_start = std::find(path.begin(), path.end(), w);
      std::vector<std::string> steps;
      for (auto it = cycle_start; it != path.end(); ++it) {
        const Action& a = schedule.actions[*it][next[*it]];
        const Wait& why = waits[*it];
        const int to = schedule.worker_of_stage[why.on.stage];
        if (why.credit) {
          steps.push_back(absl::StrCat("worker ", *it, " at ", a.ToString(),
                                       " waits for a credit on edge ", a.stage, "->", why.on.stage,
                                       " (", costs.credits, " in flight) that worker ", to,
                                       " returns at ", why.on.ToString()));
        } else {
          steps.push_back(absl::StrCat("worker ", *it, " at ", a.ToString(), " waits for ",
                                       why.on.ToString(), " on worker ", to));
        }
      }
      return absl::FailedPreconditionError(
          absl::StrCat("the schedule deadlocks: ", absl::StrJoin(steps, "; "), " (a cycle; ",
                       remaining, " action(s) never run)"));
    }
    const Action a = schedule.actions[best][next[best]++];
    const int tt = type_of(a);
    const double cost = CostOf(tt == 0 ? costs.forward : costs.backward, a.stage);
    start[tt][a.stage][a.micro_batch] = best_t;
    end[tt][a.stage][a.micro_batch] = best_t + cost;
    free_at[best] = best_t + cost;
    report.workers[best].busy += cost;
    report.timeline[best].push_back({a, best_t, best_t + cost});
    // Credits: this action reserves one on its outgoing edge and releases one on the edge its
    // input came in on.
    if (tt == 0 ? a.stage < S - 1 : a.stage > 0) ++reserved[tt][tt == 0 ? a.stage : a.stage - 1];
    if (tt == 0 ? a.stage > 0 : a.stage < S - 1) {
      std::vector<double>& rel = released[tt][tt == 0 ? a.stage - 1 : a.stage];
      rel.insert(std::upper_bound(rel.begin(), rel.end(), best_t), best_t);
    }
    --remaining;
  }
  for (int w = 0; w < W; ++w) {
    if (!report.timeline[w].empty()) {
      report.makespan = std::max(report.makespan, report.timeline[w].back().end);
    }
  }
  for (WorkerReport& w : report.workers) {
    w.bubble = report.makespan > 0 ? 1.0 - w.busy / report.makespan : 0.0;
  }
  // Activations: held by a stage from its forward's start to its backward's end.
  report.stages.resize(S);
  report.worker_peak_bytes.assign(W, 0);
  std::vector<std::vector<std::pair<double, int64_t>>> worker_events(W);
  for (int st = 0; st < S; ++st) {
    std::vector<std::pair<double, int>> events;  // (time, +1/-1); frees sort first.
    for (int mb = 0; mb < M; ++mb) {
      events.emplace_back(start[0][st][mb], 1);
      events.emplace_back(end[1][st][mb], -1);
      const int64_t bytes = BytesOf(costs.activation_bytes, st);
      worker_events[schedule.worker_of_stage[st]].emplace_back(start[0][st][mb], bytes);
      worker_events[schedule.worker_of_stage[st]].emplace_back(end[1][st][mb], -bytes);
    }
    std::sort(events.begin(), events.end());
    int held = 0;
    for (const auto& [t, d] : events) {
      held += d;
      report.stages[st].peak_micro_batches = std::max(report.stages[st].peak_micro_batches, held);
    }
    report.stages[st].peak_bytes =
        report.stages[st].peak_micro_batches * BytesOf(costs.activation_bytes, st);
  }
  for (int w = 0; w < W; ++w) {
    std::sort(worker_events[w].begin(), worker_events[w].end());
    int64_t held = 0;
    for (const auto& [t, d] : worker_events[w]) {
      held += d;
      report.worker_peak_bytes[w] = std::max(report.worker_peak_bytes[w], held);
    }
    if (costs.memory_budget && report.worker_peak_bytes[w] > *costs.memory_budget) {
      return absl::ResourceExhaustedError(
          absl::StrCat("worker ", w, " would hold ", report.worker_peak_bytes[w],
                       " bytes of activations at its peak; the budget is ", *costs.memory_budget));
    }
  }
  return report;
}

std::string Report::ToString() const {
  std::string out = absl::StrCat("makespan ", makespan, "\n");
  absl::StrAppend(&out, "worker  busy  bubble  peak activation bytes\n");
  for (size_t w = 0; w < workers.size(); ++w) {
    absl::StrAppend(&out, w, "  ", workers[w].busy, "  ", workers[w].bubble, "  ",
                    worker_peak_bytes[w], "\n");
  }
  absl::StrAppend(&out, "stage  peak micro-batches held  peak bytes\n");
  for (size_t s = 0; s < stages.size(); ++s) {
    absl::StrAppend(&out, s, "  ", stages[s].peak_micro_batches, "  ", stages[s].peak_bytes, "\n");
  }
  absl::StrAppend(&out, "timeline (action@start):\n");
  for (size_t w = 0; w < timeline.size(); ++w) {
    absl::StrAppend(&out, "worker ", w, ":");
    for (const Slot& slot : timeline[w]) {
      absl::StrAppend(&out, " ", slot.action.ToString(), "@", slot.start);
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace pipeline
}  // namespace sluice
