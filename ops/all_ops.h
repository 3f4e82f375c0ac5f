// Every op family's DSL functions in one include.
#ifndef SLUICE_OPS_ALL_OPS_H_
#define SLUICE_OPS_ALL_OPS_H_

#include "ops/array_ops.h"
#include "ops/base_ops.h"
#include "ops/data_ops.h"
#include "ops/math_ops.h"
#include "ops/nn_ops.h"
#include "ops/ps_ops.h"
#include "ops/random_ops.h"
#include "ops/register.h"
#include "ops/state_ops.h"

#endif  // SLUICE_OPS_ALL_OPS_H_
