#include "distributed/edge_sender.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace sluice {

EdgeSender::EdgeSender(std::shared_ptr<grpc::Channel> control_channel, DataClient* data,
                       std::string edge, LostInFlight on_lost_in_flight, Metrics* metrics)
    : stub_(proto::Control::NewStub(std::move(control_channel))),
      data_(data),
      edge_(std::move(edge)),
      metrics_(metrics),
      on_lost_in_flight_(std::move(on_lost_in_flight)) {
  data_->SetConnectionLostListener([this] { DataConnectionLost(); });
}

EdgeSender::~EdgeSender() {
  {
    absl::MutexLock lock(&mu_);
    dropped_ = true;  // No on_lost_in_flight_ call, and no copy pushed, from here on.
    if (ctx_) ctx_->TryCancel();
  }
  data_->SetConnectionLostListener(nullptr);  // Waits for a call in progress.
  if (reader_.joinable()) reader_.join();
  if (stream_) (void)stream_->Finish();
}

absl::Status EdgeSender::EnsureOpen(const absl::Status* cancelled) {
  if (opened_) {
    {
      absl::MutexLock lock(&mu_);
      if (broken_.ok()) return absl::OkStatus();
    }
    // The stream broke (the receiver restarted, or an open was cancelled): close it and open
    // a new one below; the new receiver grants fresh credits. The data stream to the receiver
    // goes too: on a dead connection its next write may still "succeed", losing the tensor.
    reader_.join();
    (void)stream_->Finish();
    stream_.reset();  // Finished: the destructor must not finish it again.
    opened_ = false;
    data_->ResetStream();
  }
  grpc::ClientContext* ctx;
  {
    absl::MutexLock lock(&mu_);
    if (dropped_) return broken_;                   // The receiver was found lost: never reopen.
    if (!cancelled->ok()) return absl::OkStatus();  // TakeCredit reports the cancellation.
    broken_ = absl::OkStatus();
    window_ = 0;          // The new receiver's window comes with its first message.
    uncredited_.clear();  // Their steps were reported lost when the old stream broke.
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx = ctx_.get();
    opening_for_ = cancelled;
  }
  // Outside mu_: starting the call, or else writing its first message, waits for the peer's
  // HTTP/2 handshake, which a hung peer never completes (which of the two waits depends on
  // gRPC's timing). Cancel() or this Send's step cancellation ends the wait (TryCancel).
  auto stream = stub_->EdgeControl(ctx);
  {
    absl::MutexLock lock(&mu_);
    stream_ = std::move(stream);
  }
  opened_ = true;
  proto::EdgeControlMessage open;
  open.mutable_open()->set_protocol_version(kProtocolVersion);
  open.mutable_open()->set_edge(edge_);
  const bool sent = stream_->Write(open);
  {
    absl::MutexLock lock(&mu_);
    opening_for_ = nullptr;  // Open: from now on one step's cancellation must not break it.
    if (!sent) {
      broken_ = absl::UnavailableError(absl::StrCat("edge '", edge_, "': control stream refused"));
    }
  }
  reader_ = std::thread([this] { ReadLoop(); });
  return absl::OkStatus();
}

void EdgeSender::ReadLoop() {
  proto::EdgeControlMessage msg;
  while (stream_->Read(&msg)) {
    absl::MutexLock lock(&mu_);
    if (msg.has_window()) window_ = std::max(0, msg.window().tensors_per_step());
    if (msg.has_credit()) {
      // One credit names one tensor. None matches a tensor given up (a failed push, a copy
      // the receiver dropped) or one from before a reopen.
      auto it = uncredited_.find({msg.credit().step_id(), msg.credit().key()});
      if (it != uncredited_.end()) uncredited_.erase(it);
    }
  }
  std::vector<std::pair<int64_t, int64_t>> lost;  // (step, tensors in flight)
  {
    absl::MutexLock lock(&mu_);
    if (broken_.ok()) {
      broken_ = absl::UnavailableError(absl::StrCat("edge '", edge_, "': control stream closed"));
    }
    // Cancel() drops the receiver on purpose (the steps are being aborted already).
    if (!dropped_) {
      const std::map<int64_t, int64_t> per_step = PerStepLocked();
      lost.assign(per_step.begin(), per_step.end());
    }
  }
  ReportLost(lost, "broke (the connection to the receiver was lost)");
}

void EdgeSender::DataConnectionLost() {
  // The tensors pushed but not yet credited may have been on the lost connection (the control
  // stream, on its own connection, may still be up, so ReadLoop would never notice): push
  // them again on a new one. A push in progress when the connection went is pushed again by
  // its own caller.
  struct Copy {
    int64_t step_id;
    std::string key;
    Tensor tensor;
  };
  std::vector<Copy> copies;
  {
    absl::MutexLock lock(&mu_);
    if (dropped_) return;  // Cancel() dropped the receiver: its steps are being aborted.
    for (auto& [step_key, u] : uncredited_) {
      if (u.state == Uncredited::State::kPushing) {
        u.connection_lost = true;
      } else {
        u.state = Uncredited::State::kPushing;
        copies.push_back({step_key.first, step_key.second, u.tensor});
      }
    }
  }
  const absl::Status not_cancelled;
  for (const Copy& c : copies) {
    const absl::Status s = Deliver(c.step_id, c.key, c.tensor, nullptr, &not_cancelled,
                                   /*copy=*/true);
    if (!s.ok() && on_lost_in_flight_) on_lost_in_flight_(c.step_id, s);
  }
}

EdgeSender::UncreditedMap::iterator EdgeSender::FindLocked(int64_t step_id, const std::string& key,
                                                           Uncredited::State state) {
  auto [first, last] = uncredited_.equal_range({step_id, key});
  for (auto it = first; it != last; ++it) {
    if (it->second.state == state) return it;
  }
  return uncredited_.end();
}

std::map<int64_t, int64_t> EdgeSender::PerStepLocked() const {
  std::map<int64_t, int64_t> out;
  for (const auto& [step_key, u] : uncredited_) ++out[step_key.first];
  return out;
}

void EdgeSender::ReportLost(const std::vector<std::pair<int64_t, int64_t>>& lost,
                            const std::string& what) {
  if (!on_lost_in_flight_) return;
  for (const auto& [step, n] : lost) {
    on_lost_in_flight_(step, absl::UnavailableError(absl::StrCat(
                                 "edge '", edge_, "' ", what, " with ", n, " tensor(s) of step ",
                                 step, " not yet consumed by the receiver")));
  }
}

absl::Status EdgeSender::Send(int64_t step_id, const std::string& key, const Tensor& tensor,
                              absl::Time deadline, CancellationManager* cancellation) {
  auto reason = [cancellation] {
    absl::Status r = cancellation->reason();
    return r.ok() ? absl::CancelledError("step was cancelled") : r;
  };
  absl::Status cancelled;  // Guarded by mu_ while the callback is registered.
  std::optional<CancellationManager::Token> token;
  bool cancelled_before = false;
  if (cancellation != nullptr) {
    token = cancellation->RegisterCallback([this, &cancelled, reason] {
      absl::Status r = reason();
      absl::MutexLock lock(&mu_);
      cancelled = std::move(r);
      // This Send is opening the stream (no tensor has used it yet): breaking it ends the wait
      // for the peer's handshake, and the next Send opens a new one. Only this Send's own
      // step may do that: Sends of other steps queue behind it.
      if (opening_for_ == &cancelled && ctx_) ctx_->TryCancel();
    });
    if (!token) {
      cancelled = reason();
      cancelled_before = true;
    }
  }
  absl::Status s;
  if (!cancelled_before) {  // A step cancelled already opens nothing: TakeCredit fails at once.
    absl::MutexLock send_lock(&send_mu_);
    s = EnsureOpen(&cancelled);
  }
  // Not under send_mu_: a step waiting for its own credit holds up no other step.
  if (s.ok()) s = TakeCredit(step_id, key, tensor, deadline, &cancelled);
  if (s.ok()) s = Deliver(step_id, key, tensor, cancellation, &cancelled, /*copy=*/false);
  // Outside both locks: this waits for the callback if it is running on another thread.
  if (token) cancellation->DeregisterCallback(*token);
  return s;
}

absl::Status EdgeSender::Deliver(int64_t step_id, const std::string& key, const Tensor& tensor,
                                 CancellationManager* cancellation, const absl::Status* cancelled,
                                 bool copy) {
  {
    absl::MutexLock lock(&mu_);
    ++pushing_;
  }
  // A step cancelled midway abandons its tensor between chunks (the stream stays usable).
  auto stop = [cancellation] { return cancellation != nullptr && cancellation->IsCancelled(); };
  absl::Status s;
  while (true) {
    s = data_->Push(step_id, key, tensor, stop, /*resent=*/copy);
    if (copy && metrics_ != nullptr) {
      metrics_->Add("sluice_tensors_resent_total", {{"edge", edge_}});
    }
    absl::MutexLock lock(&mu_);
    resent_ += copy;
    auto it = FindLocked(step_id, key, Uncredited::State::kPushing);
    if (it == uncredited_.end()) {
      // Credited already: the receiver had the tensor, whatever became of this push (unless
      // it was abandoned, which only a cancelled step does). Or the edge was reopened: the
      // old stream's steps were reported lost.
      if (!absl::IsCancelled(s)) s = absl::OkStatus();
      break;
    }
    Uncredited& u = it->second;
    if (s.ok() && !u.connection_lost) {
      u.state = Uncredited::State::kPushed;
      break;
    }
    // The push returned, but the connection it went on was lost meanwhile: push a copy on a
    // new one. A push that failed (a copy included) fails its step: the receiver may be hung,
    // and a copy would wait for it unbounded.
    if (s.ok() && cancelled->ok() && broken_.ok() && !dropped_) {
      u.connection_lost = false;
      copy = true;
      continue;
    }
    uncredited_.erase(it);  // Failed: the step fails with this error.
    break;
  }
  absl::MutexLock lock(&mu_);
  --pushing_;
  // A push broken because the step was aborted (its peer lost) reports the abort.
  if (!s.ok() && !cancelled->ok()) {
    return absl::Status(cancelled->code(), absl::StrCat("edge '", edge_, "': step ", step_id,
                                                        " was cancelled while pushing tensor '",
                                                        key, "': ", cancelled->message()));
  }
  if (!s.ok() && copy) {
    return absl::Status(
        s.code(), absl::StrCat("edge '", edge_, "' lost its data connection under tensor '", key,
                               "' of step ", step_id,
                               " before the receiver consumed it, and pushing it again failed: ",
                               s.message()));
  }
  return s;
}

absl::Status EdgeSender::TakeCredit(int64_t step_id, const std::string& key, const Tensor& tensor,
                                    absl::Time deadline, const absl::Status* cancelled) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, step_id, cancelled]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return CanSend(step_id) || !cancelled->ok();
  };
  if (!ready() && metrics_ != nullptr) {
    const absl::Time start = absl::Now();
    ++waiting_;
    mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
    --waiting_;
    metrics_->Add("sluice_credit_waits_total", {{"edge", edge_}});
    metrics_->Add("sluice_credit_wait_seconds_total", {{"edge", edge_}},
                  absl::ToDoubleSeconds(absl::Now() - start));
  } else {
    ++waiting_;
    mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
    --waiting_;
  }
  if (!cancelled->ok()) {
    return absl::Status(cancelled->code(),
                        absl::StrCat("edge '", edge_, "': step ", step_id,
                                     " was cancelled before tensor '", key, "' got a credit (",
                                     StepInFlight(step_id), " in flight): ", cancelled->message()));
  }
  if (!broken_.ok()) return broken_;
  if (!CanSend(step_id)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "edge '", edge_, "': no credit from the receiver for tensor '", key, "' of step ", step_id,
        " (", StepInFlight(step_id), " in flight, window ", window_, ")"));
  }
  uncredited_.insert({{step_id, key}, Uncredited{tensor}});
  return absl::OkStatus();
}

void EdgeSender::Cancel() {
  {
    absl::MutexLock lock(&mu_);
    dropped_ = true;
    uncredited_.clear();  // Their steps are being aborted: hold no tensors for them.
    if (ctx_) ctx_->TryCancel();
    if (broken_.ok()) {
      broken_ = absl::UnavailableError(
          absl::StrCat("edge '", edge_, "': the receiver was found lost; its links were dropped"));
    }
  }
  data_->CancelStream();
}

void EdgeSender::Describe(proto::InspectedEdge* out) const {
  absl::MutexLock lock(&mu_);
  out->set_edge(edge_);
  out->set_window(window_);
  out->set_in_flight(uncredited_.size());
  out->set_waiting_senders(waiting_);
  for (const auto& [step, n] : PerStepLocked()) (*out->mutable_step_in_flight())[step] = n;
  if (!broken_.ok()) out->set_broken(std::string(broken_.message()));
}

int64_t EdgeSender::StepInFlight(int64_t step_id) const {
  // A step's entries are adjacent (the map is ordered by step first), at most a window's worth.
  int64_t n = 0;
  for (auto it = uncredited_.lower_bound({step_id, ""});
       it != uncredited_.end() && it->first.first == step_id; ++it) {
    ++n;
  }
  return n;
}

int64_t EdgeSender::credits(int64_t step_id) const {
  absl::MutexLock lock(&mu_);
  return std::max<int64_t>(0, window_ - StepInFlight(step_id));
}

int64_t EdgeSender::in_flight() const {
  absl::MutexLock lock(&mu_);
  return uncredited_.size();
}

int64_t EdgeSender::resent() const {
  absl::MutexLock lock(&mu_);
  return resent_;
}

int64_t EdgeSender::pushing() const {
  absl::MutexLock lock(&mu_);
  return pushing_;
}

int64_t EdgeSender::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

}  // namespace sluice
