// Fuzzes a master's session requests (distributed/master.h) in process, without gRPC: what any
// client that reaches the master's port can send. CreateSession and ExtendSession import the
// client's GraphDef and place it on the workers' devices; RunStep prunes and partitions it for
// the step's feeds, fetches and targets and checks the fed values, before it contacts a worker.
//
// One Master serves every input. Its two workers are unreachable addresses and are marked lost
// before the first input (a heartbeat timeout of a nanosecond; their pings are refused at
// once), so a RunStep stops at the worker health check, after everything above,
// and nothing waits on the network. Each input's sessions are closed at its end.
//
// Input: records [u8 tag][u16 LE length][length bytes] (tests/fuzz/fuzz_input.h). The tag's low
// three bits choose the request (tag % 8, 5-7 unused), its bytes are the serialised request:
//   0 CreateSessionRequest  1 ExtendSessionRequest  2 CloseSessionRequest  3 RunStepRequest
//   4 ListDevicesRequest
// Tag bit 0x80: the request's protocol_version is kept as given; otherwise it is set to the
// current one. An empty session_handle means the last session this input created.
// With SLUICE_FUZZ_VERBOSE set, each request's status is printed (for writing seeds).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "distributed/master.h"
#include "distributed/protocol.h"
#include "distributed/protocol.pb.h"
#include "tests/fuzz/fuzz_input.h"

namespace sluice {
namespace {

constexpr uint8_t kKeepVersion = 0x80;

Master* TheMaster() {
  static Master* master = [] {
    MasterOptions options;
    for (int task = 0; task < 2; ++task) {
      proto::PeerAddress w;
      w.set_task_prefix(absl::StrCat("/job:worker/task:", task));
      // Port 1 on loopback: refused at once, never a hostile or slow peer.
      w.set_control_address("127.0.0.1:1");
      w.set_data_address("127.0.0.1:1");
      options.workers.push_back(w);
    }
    // The monitor's first round runs before the workers are watched: the second marks them.
    options.heartbeat.interval = absl::Milliseconds(200);
    options.heartbeat.timeout = absl::Nanoseconds(1);
    options.session_idle_timeout = absl::InfiniteDuration();
    options.wait_for_tasks = absl::ZeroDuration();  // Unreachable workers: fail at once.
    return new Master(options);  // Never destroyed: its monitor thread serves every input.
  }();
  return master;
}

grpc::Status Report(const char* what, const grpc::Status& status) {
  static const bool verbose = std::getenv("SLUICE_FUZZ_VERBOSE") != nullptr;
  if (verbose) {
    std::fprintf(stderr, "master_fuzz: %s: %d %s\n", what, static_cast<int>(status.error_code()),
                 status.error_message().c_str());
  }
  return status;
}

template <typename Proto>
bool Parse(absl::string_view bytes, Proto* msg) {
  return msg->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

void RunInput(const uint8_t* data, size_t size) {
  Master* master = TheMaster();
  fuzz::FuzzInput in(data, size);
  std::vector<std::string> sessions;
  auto handle = [&](auto* req) {
    if (req->session_handle().empty() && !sessions.empty()) {
      req->set_session_handle(sessions.back());
    }
  };
  while (!in.empty()) {
    const fuzz::FuzzInput::Record r = in.NextRecord();
    const bool keep_version = (r.tag & kKeepVersion) != 0;
    auto version = [&](auto* req) {
      if (!keep_version) req->set_protocol_version(kProtocolVersion);
    };
    switch (r.tag & 7) {
      case 0: {
        proto::CreateSessionRequest req;
        if (!Parse(r.bytes, &req)) break;
        version(&req);
        proto::CreateSessionResponse resp;
        if (Report("CreateSession", master->CreateSession(nullptr, &req, &resp)).ok()) {
          sessions.push_back(resp.session_handle());
        }
        break;
      }
      case 1: {
        proto::ExtendSessionRequest req;
        if (!Parse(r.bytes, &req)) break;
        version(&req);
        handle(&req);
        proto::ExtendSessionResponse resp;
        Report("ExtendSession", master->ExtendSession(nullptr, &req, &resp));
        break;
      }
      case 2: {
        proto::CloseSessionRequest req;
        if (!Parse(r.bytes, &req)) break;
        version(&req);
        handle(&req);
        proto::CloseSessionResponse resp;
        Report("CloseSession", master->CloseSession(nullptr, &req, &resp));
        break;
      }
      case 3: {
        proto::RunStepRequest req;
        if (!Parse(r.bytes, &req)) break;
        version(&req);
        handle(&req);
        proto::RunStepResponse resp;
        Report("RunStep", master->RunStep(nullptr, &req, &resp));
        break;
      }
      case 4: {
        proto::ListDevicesRequest req;
        if (!Parse(r.bytes, &req)) break;
        version(&req);
        proto::ListDevicesResponse resp;
        Report("ListDevices", master->ListDevices(nullptr, &req, &resp));
        break;
      }
      default:
        break;
    }
  }
  for (const std::string& s : sessions) {
    proto::CloseSessionRequest req;
    req.set_protocol_version(kProtocolVersion);
    req.set_session_handle(s);
    proto::CloseSessionResponse resp;
    (void)master->CloseSession(nullptr, &req, &resp);
  }
}

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sluice::Master* master = sluice::TheMaster();
  // Wait for the monitor's first round to mark both workers lost.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (master->monitor()->health("/job:worker/task:0").ok() ||
         master->monitor()->health("/job:worker/task:1").ok()) {
    if (absl::Now() > give_up) {
      std::fprintf(stderr, "master_fuzz: the workers were not marked lost within 30 s\n");
      std::abort();
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::RunInput(data, size);
  return 0;
}
