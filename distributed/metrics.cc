#include "distributed/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace sluice {
namespace {

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  return absl::StrCat(v);
}

// The labels text with one more label appended (a histogram bucket's le).
std::string WithLabel(const std::string& rendered, const std::string& extra) {
  if (rendered.empty()) return absl::StrCat("{", extra, "}");
  return absl::StrCat(rendered.substr(0, rendered.size() - 1), ",", extra, "}");
}

}  // namespace

std::string RenderLabels(const Metrics::Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string value =
        absl::StrReplaceAll(labels[i].second, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
    absl::StrAppend(&out, i ? "," : "", labels[i].first, "=\"", value, "\"");
  }
  return out + "}";
}

Metrics::Family* Metrics::Find(const std::string& name) {
  for (Family& f : families_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

void Metrics::DeclareCounter(const std::string& name, const std::string& help) {
  absl::MutexLock lock(&mu_);
  if (Find(name) == nullptr) {
    families_.push_back(Family{name, help, "counter", {}, {}, {}, {}, {}});
  }
}

void Metrics::DeclareHistogram(const std::string& name, const std::string& help,
                               std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  if (Find(name) == nullptr) {
    families_.push_back(Family{name, help, "histogram", std::move(bounds), {}, {}, {}, {}});
  }
}

void Metrics::DeclareGauge(const std::string& name, const std::string& help,
                           std::function<double()> read) {
  absl::MutexLock lock(&mu_);
  if (Find(name) == nullptr) {
    families_.push_back(Family{name, help, "gauge", {}, std::move(read), {}, {}, {}});
  }
}

void Metrics::DeclareCollector(const std::string& name, const std::string& help,
                               const std::string& type, std::function<Samples()> read) {
  absl::MutexLock lock(&mu_);
  if (Find(name) == nullptr) {
    families_.push_back(Family{name, help, type, {}, {}, std::move(read), {}, {}});
  }
}

void Metrics::Add(const std::string& name, const Labels& labels, double delta) {
  const std::string key = RenderLabels(labels);
  absl::MutexLock lock(&mu_);
  Family* f = Find(name);
  if (f == nullptr || f->type != "counter" || !(delta >= 0)) return;
  f->counters[key] += delta;
}

void Metrics::Observe(const std::string& name, const Labels& labels, double value) {
  const std::string key = RenderLabels(labels);
  absl::MutexLock lock(&mu_);
  Family* f = Find(name);
  if (f == nullptr || f->type != "histogram") return;
  Histogram& h = f->histograms[key];
  if (h.counts.empty()) h.counts.assign(f->bounds.size() + 1, 0);
  const size_t bucket =
      std::lower_bound(f->bounds.begin(), f->bounds.end(), value) - f->bounds.begin();
  h.counts[bucket] += 1;
  h.sum += value;
  h.count += 1;
}

double Metrics::CounterValue(const std::string& name, const Labels& labels) const {
  absl::MutexLock lock(&mu_);
  for (const Family& f : families_) {
    if (f.name != name) continue;
    auto it = f.counters.find(RenderLabels(labels));
    return it == f.counters.end() ? 0 : it->second;
  }
  return 0;
}

std::string Metrics::Text() const {
  // Gauges and collectors are read after the lock is released (a callback may take locks of
  // its own): copies of their families, as a Declare may grow families_ meanwhile.
  std::vector<Family> deferred;
  std::string out;
  {
    absl::MutexLock lock(&mu_);
    for (const Family& f : families_) {
      if (f.read || f.collect) {
        deferred.push_back(Family{f.name, f.help, f.type, {}, f.read, f.collect, {}, {}});
        continue;
      }
      absl::StrAppend(&out, "# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name, " ", f.type, "\n");
      for (const auto& [labels, value] : f.counters) {
        absl::StrAppend(&out, f.name, labels, " ", Number(value), "\n");
      }
      for (const auto& [labels, h] : f.histograms) {
        double cumulative = 0;
        for (size_t b = 0; b < h.counts.size(); ++b) {
          cumulative += h.counts[b];
          const double le = b < f.bounds.size() ? f.bounds[b] : INFINITY;
          absl::StrAppend(&out, f.name, "_bucket", WithLabel(labels, "le=\"" + Number(le) + "\""),
                          " ", Number(cumulative), "\n");
        }
        absl::StrAppend(&out, f.name, "_sum", labels, " ", Number(h.sum), "\n", f.name, "_count",
                        labels, " ", Number(h.count), "\n");
      }
    }
  }
  for (const Family& f : deferred) {
    absl::StrAppend(&out, "# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name, " ", f.type, "\n");
    if (f.read) {
      absl::StrAppend(&out, f.name, " ", Number(f.read()), "\n");
      continue;
    }
    for (const auto& [labels, value] : f.collect()) {
      absl::StrAppend(&out, f.name, RenderLabels(labels), " ", Number(value), "\n");
    }
  }
  return out;
}

}  // namespace sluice
