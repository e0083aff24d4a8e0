# solverd image: built on the CUDA 13 devel image, run on the matching
# runtime image. The runtime stage gets only `cmake --install`'s tree
# (bin/ plus the bundled_libs component's lib/; tests/install_test.sh checks
# that tree runs on its own) and falls back to CPU lanes without a GPU.
#   docker build -t solverd .
#   docker run --gpus all -p 50051:50051 -p 9464:9464 solverd
ARG CUDA_VERSION=13.0.0
ARG UBUNTU=ubuntu24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
# The packages scripts/install-deps.sh installs on Debian, as Ubuntu names them.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build g++ make pkg-config \
      libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev prometheus-cpp-dev libsqlite3-dev libpq-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSOLVERD_CUDA=ON \
      -DSOLVERD_BUILD_TESTS=OFF -DCMAKE_CUDA_ARCHITECTURES="80;90;100" \
 && cmake --build /build --target solverd solverctl \
 && cmake --install /build --prefix /opt/solverd \
 && cmake --install /build --prefix /opt/solverd --component bundled_libs

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU} AS runtime
# OpenBLAS's LAPACK, which solverd loads at run time for GPTQ's host
# factorization (without it, its own loops: about 10x slower).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0-pthread \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/solverd --create-home solverd
COPY --from=build /opt/solverd /opt/solverd
USER solverd
WORKDIR /var/lib/solverd
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/opt/solverd/bin/solverctl", "--server=127.0.0.1:50051", "health"]
ENTRYPOINT ["/opt/solverd/bin/solverd"]
CMD ["--listen=0.0.0.0:50051", "--metrics-address=0.0.0.0", "--metrics-port=9464", \
     "--state-dir=/var/lib/solverd/state", "--grace-period=30s"]
