// SHA-256 (swift-crypto) for checksums of checkpoints and model files and for identities
// of data and shared tensors: a real hash, where two flipped bits cannot cancel.
import Crypto
import Foundation

public enum Digest {
    /// SHA-256 of `data` as 64 lowercase hex digits.
    public static func sha256(_ data: Data) -> String { hex(SHA256.hash(data: data)) }

    /// SHA-256 of raw memory.
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> String { hex(SHA256.hash(data: bytes)) }

    /// SHA-256 of several byte blocks in order (a file read in pieces, several buffers).
    public static func sha256(parts: [Data]) -> String {
        var h = SHA256()
        for p in parts { h.update(data: p) }
        return hex(h.finalize())
    }

    static func hex<D: Sequence>(_ d: D) -> String where D.Element == UInt8 {
        d.map { String(format: "%02x", $0) }.joined()
    }
}
