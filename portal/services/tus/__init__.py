"""Resumable uploads: the state and the bytes behind the tus endpoint (``api.tus``).

Several web processes on several machines may each receive one PATCH of the
same upload, and S3 has no "append". So on object storage every accepted
PATCH body is streamed into its own object (an ``UploadPart`` row records its
key, offset and size); on local disk, which all processes share anyway, the
bodies are written at their offset into one data file per upload
(``parts``). Either way the session's offset moves only after the bytes are
safely written (``sessions``). When the last byte arrives the parts become
the final object, hashed, and the file record is created exactly like a
simple upload (``finalise``). Concurrent requests on one upload are
serialised with a PostgreSQL advisory lock held across the storage write
but outside any transaction (``locks``).
"""
