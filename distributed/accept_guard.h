// Accept guard: keeps gRPC's listening ports alive when the process runs out of descriptors.
//
// gRPC 1.51 (Debian 12) stops listening on a port for good the first time accept4 fails with
// EMFILE or ENFILE (tcp_server_posix.cc: "Failed accept4", then the listener is shut down;
// grpc/grpc#20418): a server that ran out of descriptors once, say under a burst of
// connections, never accepted another one, even after every descriptor was free again, and
// its peers then took it for lost. accept_guard.cc defines accept4 in the sluice_server
// executable, which the dynamic linker binds gRPC's calls to ahead of libc's. When libc's
// accept4 fails for want of descriptors, the guard frees a descriptor it holds in reserve,
// accepts each pending connection and resets it (its client sees the reset at once and retries
// later, as after a refused connection), takes the reserve back, and reports EAGAIN, so gRPC
// waits for the next connection instead of giving the port up. Connections are refused only
// while descriptors are short; the first one after that is served. Linked into sluice_server
// only: a process that embeds servers (the Python module's sl.Server) is not covered.
// Thread-safe.
//
//   int main() { sluice::ReserveDescriptorForAccept(); ... }
#ifndef SLUICE_DISTRIBUTED_ACCEPT_GUARD_H_
#define SLUICE_DISTRIBUTED_ACCEPT_GUARD_H_

namespace sluice {

// Takes the reserve descriptor; call once at start, before descriptors can run short. Returns
// false (and the guard refuses nothing, but still keeps the listener) when it cannot.
bool ReserveDescriptorForAccept();

}  // namespace sluice

#endif  // SLUICE_DISTRIBUTED_ACCEPT_GUARD_H_
