// Package spool is the pipeline's crash-safe disk queue. Every event a
// sink produces is appended to it first; one drainer reads the records
// back in order, stores them, and saves the position of the last stored
// record in the same transaction, so that after a crash reading resumes
// right after it. Records are opaque byte slices.
//
// # Writing
//
// Append copies a record into an in-memory buffer under a mutex (the
// CRC is computed before taking it) and returns; a writer goroutine
// writes the buffer to the live segment every FlushInterval (10 ms) or
// once 256 KiB are buffered, in one write call, and fsyncs the file at
// most every SyncInterval (200 ms; negative: after every write). Append
// never waits for the disk: if the spool holds MaxBytes, or MaxBufferBytes
// wait in memory for a slow disk, the record is dropped, counted, and
// ErrFull returned.
//
// # Loss bound
//
// After the process is killed (kill -9, panic, OOM) the records still in
// the buffer are lost: at most FlushInterval's worth (or 256 KiB).
// What was written is in the page cache and survives. After the machine
// crashes (power, kernel) the records not yet fsynced are lost too: at
// most SyncInterval + FlushInterval's worth; the tail of the live segment
// may then be torn. Segments are fsynced when they are closed, and the
// directory when one is created or deleted.
//
// # Identity
//
// A spool directory has an identity (ID), 16 random bytes kept in the file
// spool.id, made anew whenever Open finds no segment: a new spool, or one
// whose segments were deleted, so that numbering starts at 1 again. A
// consumer that saves a position with the identity it came from can tell
// such a spool from the one it read, where the numbers alone would point
// into the new segments and skip their first records.
//
// # Free-space reserve
//
// With MinFreeBytes set, Append drops records (ErrNoSpace, counted apart)
// while the spool's filesystem has less free, looked up after each write
// of the buffer and every 100 ms while below it: the store, by default on
// the same filesystem, keeps the room it needs to take the backlog and so
// free the spool. A failed write is counted too (the records it held are
// lost), and WriteError reports it until a write succeeds.
//
// # Reading and releasing
//
// A Reader returns the records after a Pos (segment, offset just after a
// record) in order, and follows the live segment as it is written; it
// reads only bytes the writer has finished writing. Release(pos) deletes
// the segments wholly before pos. Open lists the segments left in the
// directory (a run that did not Close included) and starts a new segment
// for its appends, so an old, possibly torn segment is never appended to.
//
// # On-disk format
//
// A spool is a directory of segment files named by their sequence number
// as 16 hex digits, "0000000000000001.seg", numbered from 1 and never
// reused: Release keeps the newest segment, so the numbering survives
// restarts and saved positions stay valid. All integers are little-endian.
//
// A segment starts with a 16-byte header:
//
//	offset size
//	0      4    magic "TDSP"
//	4      1    format version, 1
//	5      3    reserved, zero
//	8      8    sequence number, as in the file name
//
// then records, back to back, each:
//
//	0      4    marker F1 5B 0C A7
//	4      4    payload length n, at most MaxRecordBytes (16 MiB)
//	8      4    CRC-32C (Castagnoli) of the length field and the payload
//	12     n    payload
//
// A Pos is a segment number and the offset just after a record in it; its
// binary form (MarshalBinary) is 16 bytes, segment then offset, both
// big-endian so that the bytes sort like the positions.
//
// # Damage
//
// A record whose marker, length or CRC is wrong, or that is cut off by the
// end of a closed segment, is damaged. The reader then searches forward
// for the next marker whose record checks out (a random match also needs
// a matching CRC-32C, 1 in 2^32), and resumes there: one lost record, or
// a flipped byte, costs only the records it touches, and a torn tail
// costs only the torn record. Each damaged stretch is logged with its
// file and offset, counted (Stats.Damaged, takedown_spool_damaged_total)
// and passed to Config.OnDamage. A segment with a damaged header is read
// the same way, from offset 0. A payload that itself contains a complete
// encoded record could be mistaken for it only when resynchronising
// inside damage; opaque event records do not.
package spool
