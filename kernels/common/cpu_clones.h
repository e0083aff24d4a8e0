// SOLVERD_CPU_CLONES: marks a hot CPU loop to be compiled for AVX2+FMA as
// well as the portable baseline, the variant picked at run time, so the
// portable build still runs at full width on the machines that have it.
// A macro only: no state, nothing to share between threads.
#ifndef SOLVERD_KERNELS_COMMON_CPU_CLONES_H_
#define SOLVERD_KERNELS_COMMON_CPU_CLONES_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SOLVERD_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SOLVERD_CPU_CLONES
#endif

#endif  // SOLVERD_KERNELS_COMMON_CPU_CLONES_H_
