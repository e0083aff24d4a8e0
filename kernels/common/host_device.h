// SOLVERD_HD marks functions that both the CPU backends and CUDA kernels
// call: the shared per-element math of every family lives in such headers.
// A macro only: no state, nothing to share between threads.
#ifndef SOLVERD_KERNELS_COMMON_HOST_DEVICE_H_
#define SOLVERD_KERNELS_COMMON_HOST_DEVICE_H_

#ifdef __CUDACC__
#define SOLVERD_HD __host__ __device__
#else
#define SOLVERD_HD
#endif

#endif  // SOLVERD_KERNELS_COMMON_HOST_DEVICE_H_
