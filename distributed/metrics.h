// Metrics: the counters, gauges and histograms a server exposes, rendered in Prometheus' text
// exposition format (version 0.0.4) for `sluice_server --metrics_port` (metrics_http.h).
//
// A family is declared once with its help text; samples are keyed by labels. Counters only go
// up; histograms count observations into fixed buckets (cumulative `_bucket{le=...}`, `_sum`,
// `_count`); gauges are read by a callback when the text is made (the mailbox's bytes, say).
// Thread-safe: one mutex, held for a map update (metrics are recorded per step and per
// transferred tensor, never per element).
//
//   Metrics m;
//   m.DeclareCounter("sluice_steps_total", "Steps run by this worker.");
//   m.Add("sluice_steps_total", {{"result", "ok"}});
//   std::string text = m.Text();   // "# HELP sluice_steps_total ...\n# TYPE ...\n..."
#ifndef SLUICE_DISTRIBUTED_METRICS_H_
#define SLUICE_DISTRIBUTED_METRICS_H_

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace sluice {

class Metrics {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  void DeclareCounter(const std::string& name, const std::string& help);
  // Buckets' upper bounds, increasing; +Inf is implied.
  void DeclareHistogram(const std::string& name, const std::string& help,
                        std::vector<double> bounds);
  void DeclareGauge(const std::string& name, const std::string& help, std::function<double()> read);
  // A family whose samples are read when the text is made, with labels (say, one per variable
  // of a parameter server); `type` is "counter" or "gauge".
  using Samples = std::vector<std::pair<Labels, double>>;
  void DeclareCollector(const std::string& name, const std::string& help, const std::string& type,
                        std::function<Samples()> read);

  // Adds to a declared counter (a programming error otherwise: ignored in release builds).
  void Add(const std::string& name, const Labels& labels = {}, double delta = 1);
  void Observe(const std::string& name, const Labels& labels, double value);

  // A counter's value (0 when never added): for tests and tools.
  double CounterValue(const std::string& name, const Labels& labels = {}) const;
  // The exposition text of every family, in declaration order.
  std::string Text() const;

 private:
  struct Histogram {
    std::vector<double> counts;  // Per bucket (not cumulative); the last is +Inf.
    double sum = 0;
    double count = 0;
  };
  struct Family {
    std::string name, help, type;
    std::vector<double> bounds;                   // Histograms.
    std::function<double()> read;                 // Gauges.
    std::function<Samples()> collect;             // Collectors.
    std::map<std::string, double> counters;       // By rendered labels.
    std::map<std::string, Histogram> histograms;  // By rendered labels.
  };
  Family* Find(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<Family> families_ ABSL_GUARDED_BY(mu_);
};

// `{a="x",b="y"}` with Prometheus' escaping (backslash, quote, newline); "" for no labels.
std::string RenderLabels(const Metrics::Labels& labels);

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_METRICS_H_
