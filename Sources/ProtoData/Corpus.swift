// The raw text a tokenizer is trained on: one file, or every regular file in a folder
// (sorted by name, concatenated).
import Foundation

public enum Corpus {
    /// Reads `path` (file or folder). Throws if nothing is there or it is empty.
    public static func read(_ path: String) throws -> [UInt8] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DataError.missing(path: path, fix: "give a text file or folder with --input (the default corpus comes from scripts/setup.sh)")
        }
        var out: [UInt8] = []
        if isDir.boolValue {
            let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { !$0.hasPrefix(".") }.sorted()
            for n in names {
                let p = (path as NSString).appendingPathComponent(n)
                var d: ObjCBool = false
                if FileManager.default.fileExists(atPath: p, isDirectory: &d), !d.boolValue {
                    out.append(contentsOf: try Data(contentsOf: URL(fileURLWithPath: p)))
                }
            }
        } else {
            out = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        guard !out.isEmpty else { throw DataError.empty(path: path, fix: "give a corpus with some text in it") }
        return out
    }

    /// Splits text into train and validation bytes by line blocks: of every `period` blocks
    /// of 100 lines, the last goes to validation, so both splits span the whole corpus.
    public static func split(_ text: [UInt8], valEvery period: Int) -> (train: [UInt8], val: [UInt8]) {
        var train: [UInt8] = [], val: [UInt8] = []
        train.reserveCapacity(text.count)
        var line = 0, start = 0
        for i in 0..<text.count where text[i] == 0x0A || i == text.count - 1 {
            let toVal = period > 0 && (line / 100) % period == period - 1
            if toVal { val.append(contentsOf: text[start...i]) } else { train.append(contentsOf: text[start...i]) }
            start = i + 1; line += 1
        }
        return (train, val)
    }
}
