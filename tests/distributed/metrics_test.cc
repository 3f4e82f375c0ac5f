// Metrics' Prometheus text against hand-written expectations: counters with escaped labels,
// histogram buckets (cumulative, +Inf, _sum and _count), gauges read when the text is made.
#include "distributed/metrics.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice {
namespace {

TEST(MetricsTest, TextIsPrometheusExpositionFormat) {
  Metrics m;
  m.DeclareCounter("c_total", "A counter.");
  m.DeclareHistogram("h_seconds", "A histogram.", {0.1, 1});
  double level = 7;
  m.DeclareGauge("g_bytes", "A gauge.", [&level] { return level; });
  m.Add("c_total", {{"peer", "/job:worker/task:1"}, {"plane", "data"}}, 1024);
  m.Add("c_total", {{"peer", "/job:worker/task:1"}, {"plane", "data"}}, 2048);
  m.Add("c_total", {{"peer", "a\"b\\c\nd"}});
  m.Observe("h_seconds", {}, 0.05);
  m.Observe("h_seconds", {}, 0.5);
  m.Observe("h_seconds", {}, 5);
  m.Add("no_such_total");    // Undeclared: ignored.
  m.Add("c_total", {}, -1);  // Counters only go up: ignored.
  level = 9;
  EXPECT_EQ(m.Text(),
            "# HELP c_total A counter.\n"
            "# TYPE c_total counter\n"
            "c_total{peer=\"/job:worker/task:1\",plane=\"data\"} 3072\n"
            "c_total{peer=\"a\\\"b\\\\c\\nd\"} 1\n"
            "# HELP h_seconds A histogram.\n"
            "# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"0.1\"} 1\n"
            "h_seconds_bucket{le=\"1\"} 2\n"
            "h_seconds_bucket{le=\"+Inf\"} 3\n"
            "h_seconds_sum 5.55\n"
            "h_seconds_count 3\n"
            "# HELP g_bytes A gauge.\n"
            "# TYPE g_bytes gauge\n"
            "g_bytes 9\n");
  EXPECT_EQ(m.CounterValue("c_total", {{"peer", "/job:worker/task:1"}, {"plane", "data"}}), 3072);
  EXPECT_EQ(m.CounterValue("c_total", {{"plane", "control"}}), 0);
}

TEST(MetricsTest, CollectorsAreReadWhenTheTextIsMade) {
  Metrics m;
  int calls = 0;
  m.DeclareCollector("p_total", "Per variable.", "counter", [&calls] {
    ++calls;
    return Metrics::Samples{{{{"variable", "w"}}, 3}, {{{"variable", "emb"}}, 7}};
  });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(m.Text(),
            "# HELP p_total Per variable.\n"
            "# TYPE p_total counter\n"
            "p_total{variable=\"w\"} 3\n"
            "p_total{variable=\"emb\"} 7\n");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace sluice
