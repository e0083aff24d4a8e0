"""Builds the solverd package with its gRPC stubs, generated from the
repository's proto/ by grpc_tools (Debian's python3-grpc-tools), and its
version from VERSION: both beside this folder's parent, in a checkout."""
import pathlib

import setuptools
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROTO = ROOT / "proto"


def version() -> str:
    return (ROOT / "VERSION").read_text().strip()


class BuildWithStubs(build_py):
    """build_py, then solverd/v1/*_pb2(_grpc).py and solverd/_version.py."""

    def run(self):
        super().run()
        import grpc_tools
        from grpc_tools import protoc
        out = pathlib.Path(self.build_lib)
        well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
        for proto in sorted((PROTO / "solverd" / "v1").glob("*.proto")):
            args = ["protoc", f"--proto_path={PROTO}", f"--proto_path={well_known}",
                    f"--python_out={out}", f"--grpc_python_out={out}", str(proto)]
            if protoc.main(args) != 0:
                raise RuntimeError(f"protoc failed on {proto}")
        (out / "solverd" / "_version.py").write_text(f'__version__ = "{version()}"\n')


setuptools.setup(version=version(), cmdclass={"build_py": BuildWithStubs})
