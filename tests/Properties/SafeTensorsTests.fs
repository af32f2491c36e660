/// The safetensors writer and reader (src/SimKO.Host/Checkpoints/SafeTensors.cs) with half-precision
/// tensors: BF16 and F16 round trips keep every bit, and the bytes on disk are the format's
/// (little-endian IEEE half / bfloat16, named "F16" / "BF16" in the header).
module SimKO.Tests.SafeTensorsTests

open System.IO
open Expecto
open TorchSharp
open SimKO.Host.Checkpoints

let private tempFile name =
    let d = Path.Combine(Path.GetTempPath(), sprintf "simko-st-%d" System.Environment.ProcessId)
    Directory.CreateDirectory d |> ignore
    Path.Combine(d, name)

let private dict (items: (string * torch.Tensor) list) =
    items |> dict |> System.Collections.Generic.Dictionary :> System.Collections.Generic.IReadOnlyDictionary<_, _>

let tests =
    testSequenced <| testList "SafeTensors" [
        for name, dtype in [ "BF16", torch.ScalarType.BFloat16; "F16", torch.ScalarType.Float16 ] do
            testCase (sprintf "%s tensors round-trip bit for bit, with their dtype and shape" name) <| fun () ->
                use _ = torch.NewDisposeScope()
                let gen = new torch.Generator(3UL)
                let values = (torch.randn([| 3L; 5L |], generator = gen) * 100.0).to_type(dtype)
                let special = torch.tensor([| 0.0f; -0.0f; infinityf; -infinityf; 1e-3f; 65504.0f |]).to_type(dtype)
                let path = tempFile (name + ".safetensors")
                SafeTensors.Save(path, dict [ "w", values; "s", special ])
                let back = SafeTensors.Read path
                for key, original in [ "w", values; "s", special ] do
                    let t = back.[key]
                    Expect.equal t.dtype dtype (sprintf "%s dtype" key)
                    Expect.equal t.shape original.shape (sprintf "%s shape" key)
                    // compare raw bytes, so −0 and every rounding are checked
                    Expect.sequenceEqual (t.contiguous().bytes.ToArray()) (original.contiguous().bytes.ToArray()) (sprintf "%s bits" key)
        testCase "BF16 and F16 bytes on disk are little-endian halves named BF16 and F16" <| fun () ->
            use _ = torch.NewDisposeScope()
            let path = tempFile "bytes.safetensors"
            let x = torch.tensor([| 1.0f; -2.0f |])
            SafeTensors.Save(path, dict [ "b", x.to_type(torch.ScalarType.BFloat16); "h", x.to_type(torch.ScalarType.Float16) ])
            let struct (entries, dataStart, _) = SafeTensors.ReadHeader path
            let bytes = File.ReadAllBytes path
            let raw (e: SafeTensors.Entry) = bytes.[int (dataStart + e.Begin) .. int (dataStart + e.End) - 1]
            let b = entries |> Seq.find (fun e -> e.Name = "b")
            let h = entries |> Seq.find (fun e -> e.Name = "h")
            Expect.equal (b.DType, h.DType) ("BF16", "F16") "header dtypes"
            // bfloat16: 1.0 = 0x3F80, −2.0 = 0xC000; IEEE half: 1.0 = 0x3C00, −2.0 = 0xC000
            Expect.sequenceEqual (raw b) [| 0x80uy; 0x3Fuy; 0x00uy; 0xC0uy |] "BF16 bytes"
            Expect.sequenceEqual (raw h) [| 0x00uy; 0x3Cuy; 0x00uy; 0xC0uy |] "F16 bytes"
    ]
