// What crosses a stage boundary: codecs turn the activation (forward) and its gradient
// (backward) into payload bytes and back. Byte counts are exact payload + header.

public protocol WireCodec: AnyObject {
    var name: String { get }
    /// Payload of the forward message for n tokens of width d: activation x (n, d) and ids (n).
    func encodeForward(_ x: UnsafePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) -> WireBuffer
    /// Writes the rebuilt activation (n, d) and, if the codec carries them, the ids (n).
    func decodeForward(_ b: WireBuffer, into x: UnsafeMutablePointer<Float>, ids: UnsafeMutablePointer<Int32>, n: Int, d: Int) throws
    /// Payload of the backward message: the gradient (n, d) of the receiver's input.
    func encodeBackward(_ g: UnsafePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) -> WireBuffer
    func decodeBackward(_ b: WireBuffer, into g: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) throws
    /// Whether forward messages carry token ids (then every stage sees them).
    var carriesIds: Bool { get }
    /// Reconstruction error of what this codec sent since the last reset (zero for exact codecs).
    var errorStats: WireErrorStats { get set }
}

extension WireCodec {
    func expectPayload(_ b: WireBuffer, _ bytes: Int, _ what: String) throws {
        guard b.payloadBytes == bytes else {
            throw LinkError("\(name) codec: \(what) message has \(b.payloadBytes) payload bytes, expected \(bytes) (do all ranks run the same --codec and model?)")
        }
    }
}

/// Uncompressed fp32: 4·d bytes per token each way. The baseline.
public final class DenseCodec: WireCodec {
    public var errorStats = WireErrorStats()
    public init() {}
    public var name: String { "dense" }
    public var carriesIds: Bool { false }

    public func encodeForward(_ x: UnsafePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) -> WireBuffer {
        let b = WireBuffer(payloadBytes: 4 * n * d)
        b.payload.copyMemory(from: x, byteCount: 4 * n * d)
        return b
    }
    public func decodeForward(_ b: WireBuffer, into x: UnsafeMutablePointer<Float>, ids: UnsafeMutablePointer<Int32>, n: Int, d: Int) throws {
        try expectPayload(b, 4 * n * d, "forward")
        UnsafeMutableRawPointer(x).copyMemory(from: b.payload, byteCount: 4 * n * d)
    }
    public func encodeBackward(_ g: UnsafePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) -> WireBuffer {
        encodeForward(g, ids: ids, n: n, d: d)
    }
    public func decodeBackward(_ b: WireBuffer, into g: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) throws {
        try expectPayload(b, 4 * n * d, "backward")
        UnsafeMutableRawPointer(g).copyMemory(from: b.payload, byteCount: 4 * n * d)
    }
}
