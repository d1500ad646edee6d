// One aligned Float32 allocation. Parameters, gradients, optimizer moments and activations
// each live in one of these (llm.c style); typed views point into it.
import Foundation

/// A zero-initialised, 64-byte aligned block of `count` Float32 values that owns its memory.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let ptr: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count \(count)")
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            fatalError("FloatBuffer: out of memory allocating \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        ptr = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { free(ptr) }

    public func zero() { memset(ptr, 0, count * MemoryLayout<Float>.stride) }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: ptr, count: count) }

    public func toArray() -> [Float] { Array(buffer) }

    public func copy(from array: [Float]) {
        precondition(array.count == count, "FloatBuffer.copy: \(array.count) values into \(count)")
        array.withUnsafeBufferPointer { ptr.update(from: $0.baseAddress!, count: count) }
    }
}

/// Hands out consecutive slices of one FloatBuffer; used to lay out typed views.
struct Arena {
    let base: UnsafeMutablePointer<Float>
    private(set) var used = 0
    init(_ buffer: FloatBuffer) { base = buffer.ptr }
    init(base: UnsafeMutablePointer<Float>) { self.base = base }
    mutating func take(_ n: Int) -> UnsafeMutablePointer<Float> {
        defer { used += n }
        return base + used
    }
}
