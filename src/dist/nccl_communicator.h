// The NCCL communicator (nccl_communicator.cu), built when CMake finds NCCL; kept out of the public headers
// so that nothing else includes nccl.h.
#pragma once

#include <memory>

#include "heed/dist/communicator.h"

namespace heed::dist {

// Collectives on cuda:`device` over NCCL, bootstrapped and complemented (host values, host tensors,
// barriers) by `host`, the MPI communicator of the same processes.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, int device,
                                                     double timeout_s);

}  // namespace heed::dist
