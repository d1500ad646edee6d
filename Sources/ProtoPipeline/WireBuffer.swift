// One message on a stage boundary: a fixed header plus the codec's payload, in memory that
// stays put from send until the send completes (MPI needs the buffer pinned).
import Foundation

/// Raw bytes owned by the message. Layout: 16-byte header (kind u16, stamp count u16,
/// micro-batch u32, sender clock f64 seconds) then the payload. Byte counts on the wire
/// include the header. A virtual-clock run that follows several links at once carries the
/// sender's clock for the other links in `extraStamps` (emulator bookkeeping, not counted
/// as wire bytes).
public final class WireBuffer: @unchecked Sendable {
    public static let headerBytes = 16
    public let count: Int
    public let raw: UnsafeMutableRawPointer

    public init(payloadBytes: Int) {
        count = Self.headerBytes + payloadBytes
        raw = .allocate(byteCount: max(count, 16), alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }

    /// An uninitialised buffer of `totalBytes` (header included), for receiving into.
    public init(totalBytes: Int) {
        count = totalBytes
        raw = .allocate(byteCount: max(count, 16), alignment: 64)
    }

    deinit { raw.deallocate() }

    public var payload: UnsafeMutableRawPointer { raw + Self.headerBytes }
    public var payloadBytes: Int { count - Self.headerBytes }

    public var extraStamps: [Double] = []

    public var kind: UInt32 {
        get { UInt32(raw.loadUnaligned(fromByteOffset: 0, as: UInt16.self)) }
        set { raw.storeBytes(of: UInt16(truncatingIfNeeded: newValue), toByteOffset: 0, as: UInt16.self) }
    }
    /// 1 + extraStamps.count, as sent (the receiver learns how many stamps follow).
    public var stampCount: Int {
        get { Int(raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) }
        set { raw.storeBytes(of: UInt16(truncatingIfNeeded: newValue), toByteOffset: 2, as: UInt16.self) }
    }
    /// Every sender clock: the header's plus the extra ones.
    public var stamps: [Double] {
        get { [sentAt] + extraStamps }
        set { sentAt = newValue.first ?? 0; extraStamps = Array(newValue.dropFirst()); stampCount = newValue.count }
    }
    public var microbatch: UInt32 {
        get { raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self) }
        set { raw.storeBytes(of: newValue, toByteOffset: 4, as: UInt32.self) }
    }
    /// The sender's clock when it sent the message (used by the link emulator).
    public var sentAt: Double {
        get { raw.loadUnaligned(fromByteOffset: 8, as: Double.self) }
        set { raw.storeBytes(of: newValue, toByteOffset: 8, as: Double.self) }
    }
}

/// A failure on a stage link: names the peer and the message.
public struct LinkError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
