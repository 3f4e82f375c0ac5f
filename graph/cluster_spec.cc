#include "graph/cluster_spec.h"

#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sluice {
namespace {

bool IsJobName(absl::string_view s) {
  if (s.empty() || !absl::ascii_isalpha(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

// A small JSON reader for {"job": ["addr", ...], ...}; positions in errors are line:column.
class JsonReader {
 public:
  explicit JsonReader(absl::string_view text) : text_(text) {}

  absl::StatusOr<ClusterSpec::JobMap> ReadSpec() {
    ClusterSpec::JobMap jobs;
    SkipSpace();
    if (!Consume('{')) return Error("expected '{'");
    SkipSpace();
    if (Consume('}')) return Finish(std::move(jobs));
    while (true) {
      SkipSpace();
      std::string job;
      size_t job_pos = pos_;
      if (absl::Status s = ReadString(&job); !s.ok()) return s;
      if (jobs.count(job)) return Error(absl::StrCat("job '", job, "' appears twice"), job_pos);
      SkipSpace();
      if (!Consume(':')) return Error("expected ':' after the job name");
      SkipSpace();
      std::vector<std::string>& tasks = jobs[job];
      if (!Consume('[')) return Error(absl::StrCat("expected '[' (the tasks of job '", job, "')"));
      SkipSpace();
      if (!Consume(']')) {
        while (true) {
          SkipSpace();
          std::string address;
          if (absl::Status s = ReadString(&address); !s.ok()) return s;
          tasks.push_back(std::move(address));
          SkipSpace();
          if (Consume(']')) break;
          if (!Consume(',')) return Error("expected ',' or ']'");
        }
      }
      SkipSpace();
      if (Consume('}')) break;
      if (!Consume(',')) return Error("expected ',' or '}'");
    }
    return Finish(std::move(jobs));
  }

 private:
  absl::StatusOr<ClusterSpec::JobMap> Finish(ClusterSpec::JobMap jobs) {
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the closing '}'");
    return jobs;
  }

  absl::Status ReadString(std::string* out) {
    if (!Consume('"')) return Error("expected a string");
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c == '\\') {
        if (pos_ >= text_.size()) break;
        char e = text_[pos_++];
        if (e != '"' && e != '\\' && e != '/') return Error("unsupported escape", pos_ - 2);
        c = e;
      } else if (c == '\n') {
        return Error("newline inside a string", pos_ - 1);
      }
      out->push_back(c);
    }
    if (!Consume('"')) return Error("unterminated string");
    return absl::OkStatus();
  }

  void SkipSpace() {
    while (pos_ < text_.size() && absl::ascii_isspace(text_[pos_])) ++pos_;
  }
  bool Consume(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  absl::Status Error(absl::string_view what) { return Error(what, pos_); }
  absl::Status Error(absl::string_view what, size_t at) {
    int line = 1, column = 1;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cluster spec JSON: ", what, " at line ", line, ", column ", column));
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

absl::Status ValidateAddress(absl::string_view address) {
  auto fail = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid address '", address, "': ", why));
  };
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return fail("expected host:port");
  absl::string_view host = address.substr(0, colon);
  absl::string_view port = address.substr(colon + 1);
  if (host.empty()) return fail("empty host");
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return fail("bad IPv6 literal");
    for (char c : host.substr(1, host.size() - 2)) {
      if (!absl::ascii_isxdigit(c) && c != ':' && c != '.') return fail("bad IPv6 literal");
    }
  } else {
    for (char c : host) {
      if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_') {
        return fail(absl::StrCat("bad character '", std::string(1, c), "' in host"));
      }
    }
  }
  int value = 0;
  bool digits = !port.empty() && port.size() <= 5;
  for (char c : port) digits &= absl::ascii_isdigit(c) != 0;
  if (!digits || !absl::SimpleAtoi(port, &value) || value < 1 || value > 65535) {
    return fail(absl::StrCat("port '", port, "' is not in 1..65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterSpec> ClusterSpec::Create(JobMap jobs) {
  if (jobs.empty()) return absl::InvalidArgumentError("cluster spec has no jobs");
  absl::flat_hash_map<std::string, std::string> used;  // address -> "/job:x/task:i"
  for (const auto& [job, tasks] : jobs) {
    if (!IsJobName(job)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid job name '", job, "' (letters, digits, '_' and '-', starting with a letter)"));
    }
    if (tasks.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("job '", job, "' has no tasks"));
    }
    for (size_t i = 0; i < tasks.size(); ++i) {
      std::string task = absl::StrCat("/job:", job, "/task:", i);
      absl::Status s = ValidateAddress(tasks[i]);
      if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(task, ": ", s.message()));
      auto [it, inserted] = used.emplace(tasks[i], task);
      if (!inserted) {
        return absl::InvalidArgumentError(
            absl::StrCat("address '", tasks[i], "' is used by both ", it->second, " and ", task));
      }
    }
  }
  return ClusterSpec(std::move(jobs));
}

absl::StatusOr<ClusterSpec> ClusterSpec::Parse(absl::string_view text) {
  absl::string_view t = absl::StripLeadingAsciiWhitespace(text);
  if (!t.empty() && t.front() == '{') return FromJson(text);
  return FromText(text);
}

absl::StatusOr<ClusterSpec> ClusterSpec::FromJson(absl::string_view json) {
  absl::StatusOr<JobMap> jobs = JsonReader(json).ReadSpec();
  if (!jobs.ok()) return jobs.status();
  return Create(*std::move(jobs));
}

absl::StatusOr<ClusterSpec> ClusterSpec::FromText(absl::string_view text) {
  JobMap jobs;
  for (absl::string_view entry : absl::StrSplit(text, ';')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) continue;  // Allows a trailing ';'.
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster spec: expected job=host:port,... but got '", entry, "'"));
    }
    std::string job(absl::StripAsciiWhitespace(entry.substr(0, eq)));
    if (jobs.count(job)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster spec: job '", job, "' appears twice"));
    }
    std::vector<std::string>& tasks = jobs[job];
    absl::string_view list = absl::StripAsciiWhitespace(entry.substr(eq + 1));
    if (list.empty()) continue;  // Create reports the empty job.
    for (absl::string_view addr : absl::StrSplit(list, ',')) {
      tasks.emplace_back(absl::StripAsciiWhitespace(addr));
    }
  }
  return Create(std::move(jobs));
}

absl::StatusOr<ClusterSpec> ClusterSpec::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read cluster spec file '", path, "'"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<ClusterSpec> spec = Parse(buffer.str());
  if (!spec.ok()) {
    return absl::Status(spec.status().code(),
                        absl::StrCat("cluster spec file '", path, "': ", spec.status().message()));
  }
  return spec;
}

std::vector<std::string> ClusterSpec::JobNames() const {
  std::vector<std::string> names;
  for (const auto& [job, tasks] : jobs_) names.push_back(job);
  return names;
}

int ClusterSpec::NumTasks(absl::string_view job) const {
  auto it = jobs_.find(std::string(job));
  return it == jobs_.end() ? 0 : static_cast<int>(it->second.size());
}

absl::StatusOr<std::string> ClusterSpec::TaskAddress(absl::string_view job, int task) const {
  auto it = jobs_.find(std::string(job));
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("cluster spec has no job '", job,
                                            "' (jobs: ", absl::StrJoin(JobNames(), ", "), ")"));
  }
  if (task < 0 || task >= static_cast<int>(it->second.size())) {
    return absl::NotFoundError(
        absl::StrCat("job '", job, "' has ", it->second.size(), " tasks; there is no task ", task));
  }
  return it->second[task];
}

std::vector<std::string> ClusterSpec::TaskNames() const {
  std::vector<std::string> names;
  for (const auto& [job, tasks] : jobs_) {
    for (size_t i = 0; i < tasks.size(); ++i)
      names.push_back(absl::StrCat("/job:", job, "/task:", i));
  }
  return names;
}

std::string ClusterSpec::ToJson() const {
  std::vector<std::string> entries;
  for (const auto& [job, tasks] : jobs_) {
    entries.push_back(absl::StrCat("\"", job, "\": [\"", absl::StrJoin(tasks, "\", \""), "\"]"));
  }
  return absl::StrCat("{", absl::StrJoin(entries, ", "), "}");
}

std::string ClusterSpec::ToText() const {
  std::vector<std::string> entries;
  for (const auto& [job, tasks] : jobs_) {
    entries.push_back(absl::StrCat(job, "=", absl::StrJoin(tasks, ",")));
  }
  return absl::StrJoin(entries, ";");
}

}  // namespace sluice
