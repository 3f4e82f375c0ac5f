#include "ops/sendrecv_ops.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "runtime/kernel/rendezvous.h"

namespace sluice {
namespace {

// What both ends read from their attributes.
struct Edge {
  std::string tensor_name, send_device, recv_device;

  std::string Key(int64_t step_id) const {
    return Rendezvous::CreateKey(step_id, send_device, recv_device, tensor_name);
  }
};

absl::Status NoRendezvous(const Edge& edge) {
  return absl::FailedPreconditionError(absl::StrCat(
      "transfer of '", edge.tensor_name, "' between ", edge.send_device, " and ", edge.recv_device,
      " has no rendezvous (Send/Recv run only in partitioned graphs)"));
}

class SendOp : public OpKernel {
 public:
  explicit SendOp(const Node& node)
      : OpKernel(node),
        edge_{Attr<std::string>("tensor_name"), Attr<std::string>("send_device"),
              Attr<std::string>("recv_device")} {}
  bool IsExpensive() const override { return false; }
  bool MayBlock() const override { return true; }  // For a credit on the data plane.

  absl::Status Compute(OpKernelContext* ctx) override {
    Rendezvous* rendezvous = ctx->rendezvous();
    if (rendezvous == nullptr) return NoRendezvous(edge_);
    absl::Status s = rendezvous->Send(edge_.Key(ctx->step_id()), ctx->release_input(0));
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("sending '", edge_.tensor_name, "' to ",
                                                 edge_.recv_device, " failed: ", s.message()));
    }
    return absl::OkStatus();
  }

 private:
  const Edge edge_;
};

class RecvOp : public AsyncOpKernel {
 public:
  explicit RecvOp(const Node& node)
      : AsyncOpKernel(node),
        edge_{Attr<std::string>("tensor_name"), Attr<std::string>("send_device"),
              Attr<std::string>("recv_device")},
        dtype_(node.output_type(0)) {}

  void ComputeAsync(OpKernelContext* ctx, std::function<void()> done) override {
    Rendezvous* rendezvous = ctx->rendezvous();
    if (rendezvous == nullptr) {
      ctx->SetStatus(NoRendezvous(edge_));
      done();
      return;
    }
    // Cancelling the step aborts its rendezvous: this receive, and every other one, then fails
    // at once instead of waiting for a sender that will never run.
    CancellationManager* cm = ctx->cancellation();
    std::optional<CancellationManager::Token> token;
    if (cm != nullptr) {
      token = cm->RegisterCallback([rendezvous, cm] { rendezvous->StartAbort(cm->reason()); });
      if (!token) {
        ctx->SetStatus(Failed(cm->reason()));
        done();
        return;
      }
    }
    rendezvous->RecvAsync(
        edge_.Key(ctx->step_id()), [this, ctx, cm, token, done](absl::Status s, Tensor value) {
          if (token) cm->DeregisterCallback(*token);
          if (s.ok() && value.dtype() != dtype_) {
            s = absl::InternalError(absl::StrCat("received ", DTypeName(value.dtype()),
                                                 " but expected ", DTypeName(dtype_)));
          }
          if (s.ok()) {
            ctx->set_output(0, std::move(value));
          } else {
            ctx->SetStatus(Failed(s));
          }
          done();
        });
  }

 private:
  absl::Status Failed(const absl::Status& s) const {
    return absl::Status(s.code(), absl::StrCat("receiving '", edge_.tensor_name, "' from ",
                                               edge_.send_device, " failed: ", s.message()));
  }

  const Edge edge_;
  const DType dtype_;
};

absl::Status RecvShape(InferenceContext* c) {
  SLUICE_ASSIGN_OR_RETURN(TensorShape shape, c->GetAttr<TensorShape>("shape"));
  c->set_output(0, std::move(shape));
  return absl::OkStatus();
}

}  // namespace

absl::Status RegisterSendRecvOps(OpRegistry* ops, KernelRegistry* kernels) {
  auto common = [](OpDefBuilder b) {
    return b.Attr("T: type")
        .Attr("tensor_name: string")
        .Attr("send_device: string")
        .Attr("recv_device: string")
        .Attr("client_terminated: bool = false")
        .Attr("shape: shape = <unknown>")
        .SetIsStateful();
  };
  SLUICE_RETURN_IF_ERROR(ops->Register(
      common(OpDefBuilder("_Send").Input("tensor: T"))
          .Doc("Hands `tensor` to the step's rendezvous for the _Recv of the same tensor_name on "
               "recv_device. Inserted by the partitioner.")));
  SLUICE_RETURN_IF_ERROR(
      kernels->Register("_Send", kDeviceCpu, DType::kInvalid, MakeKernel<SendOp>));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      common(OpDefBuilder("_Recv").Output("tensor: T"))
          .Doc("Outputs the tensor that the _Send of the same tensor_name on send_device hands "
               "to the step's rendezvous. Inserted by the partitioner.")
          .SetShapeFn(RecvShape)));
  return kernels->Register("_Recv", kDeviceCpu, DType::kInvalid, MakeKernel<RecvOp>);
}

}  // namespace sluice
