/// safetensors tensors over 2 GiB (a 7B model's fp32 embedding is 2.18 GB): written and read back
/// in slices, bit for bit, and read straight into another dtype. One tensor of 2 GiB + 1 MiB + 3
/// bytes of uint8 (so the last slice is ragged), filled block by block with a pattern whose
/// blocks do not line up with the I/O slices: a slice written or read at the wrong offset differs.
module SimKO.Tests.SafeTensorsLargeTests

open System.IO
open Expecto
open TorchSharp
open SimKO.Host.Checkpoints

let private block = 1_048_583L                      // a prime number of bytes, unlike the 64 MiB slices

let private pattern (n: int64) =
    let t = torch.empty([| n |], dtype = System.Nullable torch.ScalarType.Byte)
    let mutable i = 0L
    while i * block < n do
        let len = min block (n - i * block)
        t.narrow(0L, i * block, len).fill_((i % 251L + 1L).ToScalar()) |> ignore
        i <- i + 1L
    t

let tests =
    testSequenced <| testList "safetensors over 2 GiB" [
        testCase "a tensor over 2 GiB is written and read back bit for bit" <| fun () ->
            use _ = torch.NewDisposeScope()
            let n = (1L <<< 31) + (1L <<< 20) + 3L
            let path = Path.Combine(Path.GetTempPath(), sprintf "simko-large-%d.safetensors" System.Environment.ProcessId)
            try
                let big = pattern n
                let small = torch.arange(10L, dtype = System.Nullable torch.ScalarType.Float32)
                SafeTensors.Save(path, readOnlyDict [ "big", big; "small", small ])
                Expect.equal (FileInfo(path).Length) (n + 40L + 8L + int64 (SafeTensors.ReadHeader(path) |> fun struct (_, start, _) -> start - 8L)) "file size = header + data"
                let back = SafeTensors.Read path
                let b = back["big"]
                Expect.equal b.shape [| n |] "shape"
                for start in [ 0L; (1L <<< 31) - 5L; n - 7L; 64L * 1048576L - 2L ] do
                    Expect.isTrue (b.narrow(0L, start, 7L).Equals(big.narrow(0L, start, 7L))) (sprintf "slice at %d" start)
                Expect.isTrue (b.Equals(big)) "every byte (torch.equal: stronger than a checksum, and no int64 copy)"
                Expect.isTrue (back["small"].Equals(small)) "the tensor after it"
                for t in back.Values do t.Dispose()
                big.Dispose()
            finally
                if File.Exists path then File.Delete path
        testCase "reading into another dtype converts slice by slice" <| fun () ->
            use _ = torch.NewDisposeScope()
            let path = Path.Combine(Path.GetTempPath(), sprintf "simko-convert-%d.safetensors" System.Environment.ProcessId)
            try
                let x = torch.linspace(-3.0, 3.0, 1001L)
                SafeTensors.Save(path, readOnlyDict [ "x", x ])
                let struct (entries, start, _) = SafeTensors.ReadHeader path
                let target = torch.empty([| 1001L |], dtype = System.Nullable torch.ScalarType.BFloat16)
                use f = File.OpenRead path
                SafeTensors.ReadInto(f, path, start, entries[0], target)
                Expect.isTrue (target.Equals(x.to_type(torch.ScalarType.BFloat16))) "bf16 of the stored fp32"
            finally
                if File.Exists path then File.Delete path
    ]
