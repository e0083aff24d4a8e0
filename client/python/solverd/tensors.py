"""Conversions between numpy arrays and solverd's Tensor / CsrMatrix."""
import numpy as np

from solverd.v1 import common_pb2, sor_pb2

_DTYPES = {
    np.dtype(np.float32): common_pb2.DTYPE_FLOAT32,
    np.dtype(np.float64): common_pb2.DTYPE_FLOAT64,
}


def tensor(values, dtype=np.float64) -> common_pb2.Tensor:
    """A Tensor holding `values` (anything numpy reads) as little-endian raw
    bytes of float32 or float64, with its shape."""
    data = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    if data.dtype.newbyteorder("=") not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, not {data.dtype}")
    return common_pb2.Tensor(shape=list(data.shape), dtype=_DTYPES[data.dtype.newbyteorder("=")],
                             raw=data.tobytes())


def array(t: common_pb2.Tensor) -> np.ndarray:
    """The numpy array a Tensor holds inline (values or raw bytes); a
    blob-backed Tensor needs Client.download first."""
    if t.blob_id:
        raise ValueError(f"tensor is in blob {t.blob_id}: use Client.download_array")
    if t.raw:
        dtype = "<f4" if t.dtype == common_pb2.DTYPE_FLOAT32 else "<f8"
        data = np.frombuffer(t.raw, dtype=dtype)
    else:
        data = np.asarray(t.values, dtype=np.float64)
    return data.reshape(list(t.shape)) if t.shape else data


def csr_matrix(row_ptr, col_idx, values) -> sor_pb2.CsrMatrix:
    """A sor CsrMatrix from compressed-row arrays (e.g. a scipy.sparse
    csr_matrix's indptr, indices and data)."""
    row_ptr = np.asarray(row_ptr, dtype=np.int64)
    return sor_pb2.CsrMatrix(rows=len(row_ptr) - 1, row_ptr=row_ptr.tolist(),
                             col_idx=np.asarray(col_idx, dtype=np.int32).tolist(),
                             values=np.asarray(values, dtype=np.float64).tolist())
