/// The safetensors reader and writer: exact round trips, and a clear error for each kind of damage.
module SimKO.Host.Tests.SafeTensorsTests

open System
open System.IO
open System.Text
open System.Collections.Generic
open Expecto
open TorchSharp
open SimKO.Host.Checkpoints
open SimKO.Host.Tests.Helpers

let private bytesOf (t: torch.Tensor) = t.contiguous().bytes.ToArray()

/// Writes a raw safetensors file: 8-byte length (or an override), header text, data.
let private writeRaw (path: string) (header: string) (data: byte[]) (lengthOverride: uint64 option) =
    let h = Encoding.UTF8.GetBytes header
    use fs = File.Create path
    let len = defaultArg lengthOverride (uint64 h.Length)
    fs.Write(BitConverter.GetBytes len, 0, 8)
    fs.Write(h, 0, h.Length)
    fs.Write(data, 0, data.Length)

let private sampleTensors () =
    let d = Dictionary<string, torch.Tensor>()
    d.["f32"] <- torch.tensor([| 1.5f; -2.25f; 3.0e-30f; Single.MaxValue; 0.0f; -0.0f |]).reshape(2L, 3L)
    d.["bf16"] <- torch.tensor([| 0.1f; 1e3f; -7.5f |]).to_type(torch.ScalarType.BFloat16)
    d.["f16"] <- torch.tensor([| 0.1f; 65504.0f; -7.5f; 1e-5f |]).to_type(torch.ScalarType.Float16)
    d.["f64"] <- torch.tensor([| Math.PI; -1e300 |])
    d.["i64"] <- torch.tensor([| Int64.MinValue; 0L; Int64.MaxValue |])
    d.["i32"] <- torch.tensor([| -5; 7 |])
    d.["u8"] <- torch.tensor([| 0uy; 255uy |])
    d.["bool"] <- torch.tensor([| true; false; true |])
    d.["scalar"] <- torch.tensor(42.0f)
    d.["empty"] <- torch.zeros([| 0L; 4L |])
    d

let private expectFormatError (path: string) (mustContain: string list) =
    let e = throws<SafeTensorsFormatException> (fun () -> (SafeTensorsFile.Open path).Dispose()) "format error"
    Expect.stringContains e.Message path "names the file"
    for s in mustContain do Expect.stringContains e.Message s (sprintf "message mentions %s" s)

/// A valid two-tensor file's header and data: a [2] F32 at 0..8 and b [1] F32 at 8..12.
let private twoTensorHeader (a: string) (b: string) =
    sprintf """{"a":%s,"b":%s}""" a b

let private data12 = Array.zeroCreate<byte> 12

let tests =
    testList "safetensors" [
        test "every supported dtype round-trips bit for bit, with shapes and metadata" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            let src = sampleTensors ()
            let meta = readOnlyDict [ "format", "pt"; "note", "ünïcode" ]
            SafeTensors.Save(path, src, meta)
            let back = SafeTensors.Load path
            Expect.equal (set back.Keys) (set src.Keys) "same names"
            for KeyValue(n, t) in src do
                let b = back.[n]
                Expect.equal b.dtype t.dtype (sprintf "%s dtype" n)
                Expect.sequenceEqual b.shape t.shape (sprintf "%s shape" n)
                Expect.sequenceEqual (bytesOf b) (bytesOf t) (sprintf "%s bytes" n)
            let m = SafeTensors.ReadMetadata path
            Expect.equal m.["note"] "ünïcode" "metadata"
            Expect.isEmpty (Directory.GetFiles(dir.Path, ".*")) "no temporary file left behind"
        }
        test "the data section starts 8-byte aligned and every tensor is aligned to its element size" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            SafeTensors.Save(path, sampleTensors ())
            use f = SafeTensorsFile.Open path
            Expect.equal (f.DataStart % 8L) 0L "aligned"
            for e in f.Entries do
                let size = int64 (SafeTensors.ElementSize(e.DType).Value)
                Expect.equal ((f.DataStart + e.Begin) % size) 0L (sprintf "%s (%s) at byte %d" e.Name e.DType e.Begin)
        }
        test "a load can convert dtype on the way in" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            let d = Dictionary<string, torch.Tensor>()
            d.["x"] <- torch.tensor([| 1.0f; 2.5f |]).to_type(torch.ScalarType.BFloat16)
            SafeTensors.Save(path, d)
            use f = SafeTensorsFile.Open path
            use x = f.Read("x", dtype = torch.ScalarType.Float32)
            Expect.equal x.dtype torch.ScalarType.Float32 "converted"
            Expect.sequenceEqual (x.data<float32>().ToArray()) [| 1.0f; 2.5f |] "values"
        }
        test "a truncated file is reported, not read" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            SafeTensors.Save(path, sampleTensors ())
            let all = File.ReadAllBytes path
            File.WriteAllBytes(path, all.[0 .. all.Length - 4])
            expectFormatError path [ "truncated" ]
            File.WriteAllBytes(path, all.[0 .. 4])
            expectFormatError path [ "too short" ]
        }
        test "an absurd header length is rejected before allocating anything" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            writeRaw path (twoTensorHeader """{"dtype":"F32","shape":[2],"data_offsets":[0,8]}""" """{"dtype":"F32","shape":[1],"data_offsets":[8,12]}""") data12 (Some(1UL <<< 60))
            expectFormatError path [ "exceeds" ]
            writeRaw path "{}" [||] (Some 4096UL)
            expectFormatError path [ "runs past the end of the file" ]
        }
        test "offsets outside the data section name the tensor" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            writeRaw path (twoTensorHeader """{"dtype":"F32","shape":[2],"data_offsets":[0,8]}""" """{"dtype":"F32","shape":[1],"data_offsets":[8,4000]}""") data12 None
            expectFormatError path [ "'b'"; "run past the end" ]
        }
        test "overlapping tensors and gaps between tensors are rejected" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            writeRaw path (twoTensorHeader """{"dtype":"F32","shape":[2],"data_offsets":[0,8]}""" """{"dtype":"F32","shape":[1],"data_offsets":[4,8]}""") data12 None
            expectFormatError path [ "overlaps" ]
            writeRaw path (twoTensorHeader """{"dtype":"F32","shape":[1],"data_offsets":[0,4]}""" """{"dtype":"F32","shape":[1],"data_offsets":[8,12]}""") data12 None
            expectFormatError path [ "belong to no tensor" ]
        }
        test "an unknown dtype is named with the supported ones" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            writeRaw path (twoTensorHeader """{"dtype":"F32","shape":[2],"data_offsets":[0,8]}""" """{"dtype":"Q4_K","shape":[1],"data_offsets":[8,12]}""") data12 None
            expectFormatError path [ "'b'"; "Q4_K"; "BF16" ]
        }
        test "a shape that does not match the byte length gives both numbers" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            writeRaw path (twoTensorHeader """{"dtype":"F32","shape":[3],"data_offsets":[0,8]}""" """{"dtype":"F32","shape":[1],"data_offsets":[8,12]}""") data12 None
            expectFormatError path [ "'a'"; "[3]"; "needs 12 bytes"; "hold 8" ]
            writeRaw path (twoTensorHeader """{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}""" """{"dtype":"F32","shape":[1],"data_offsets":[8,12]}""") data12 None
            expectFormatError path [ "non-negative" ]
            writeRaw path (twoTensorHeader """{"dtype":"F32","shape":[9223372036854775807, 4],"data_offsets":[0,8]}""" """{"dtype":"F32","shape":[1],"data_offsets":[8,12]}""") data12 None
            expectFormatError path [ "absurdly large" ]
        }
        test "malformed JSON, duplicate names and non-object headers are rejected" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            writeRaw path """{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]""" data12 None
            expectFormatError path [ "not valid JSON" ]
            writeRaw path """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""" data12 None
            expectFormatError path [ "twice" ]
            writeRaw path """{"a":[1,2]}""" [||] None
            expectFormatError path [ "'a'"; "object" ]
            writeRaw path """{"a":{"dtype":"F32","shape":[3]}}""" data12 None
            expectFormatError path [ "data_offsets" ]
        }
        testSequenced <| test "tensors larger than the I/O chunk go through in chunks unchanged" {
            use dir = new TempDir()
            let path = dir.File "t.safetensors"
            let saved = SafeTensors.IoChunkBytes
            try
                SafeTensors.IoChunkBytes <- 24L
                let d = Dictionary<string, torch.Tensor>()
                d.["x"] <- torch.arange(0.0f, 101.0f, 1.0f).reshape(1L, 101L)
                d.["y"] <- torch.arange(0L, 37L, 1L)
                SafeTensors.Save(path, d)
                let back = SafeTensors.Load path
                Expect.sequenceEqual (bytesOf back.["x"]) (bytesOf d.["x"]) "x"
                Expect.sequenceEqual (bytesOf back.["y"]) (bytesOf d.["y"]) "y"
            finally
                SafeTensors.IoChunkBytes <- saved
        }
    ]
