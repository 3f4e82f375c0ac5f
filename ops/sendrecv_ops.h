// Send/Recv ops: the two ends of a cross-device transfer, inserted by the partitioner
// (graph/partitioner.h), never written by users.
//   _Send  hands its input to the step's Rendezvous under the key
//          (step, send_device, recv_device, tensor_name, micro-batch 0); synchronous and cheap
//   _Recv  asynchronously waits for that key and outputs the tensor; a cancelled step aborts
//          the rendezvous so the receive fails instead of waiting forever
// Attributes of both: T, tensor_name ("src:0" or "^src" for control transfers), send_device,
// recv_device, client_terminated (false: both ends are graph nodes), shape (of the tensor).
// Errors name the edge and the peer device. Kernels are thread-safe.
#ifndef SLUICE_OPS_SENDRECV_OPS_H_
#define SLUICE_OPS_SENDRECV_OPS_H_

#include "graph/op_def.h"
#include "runtime/kernel/kernel.h"

namespace sluice {

absl::Status RegisterSendRecvOps(OpRegistry* ops, KernelRegistry* kernels);

}  // namespace sluice

#endif  // SLUICE_OPS_SENDRECV_OPS_H_
