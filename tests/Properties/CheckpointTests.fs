/// safetensors and HF folders: save → load is bit-identical with identical logits; sharded folders
/// load; every kind of corruption is a clear error naming the file and the problem, never a crash.
module SimKO.Tests.CheckpointTests

open System.IO
open System.Text
open Expecto
open TorchSharp
open SimKO.Data.Tokenizers
open SimKO.Host.Model
open SimKO.Host.Checkpoints

let private temp name =
    let d = Path.Combine(Path.GetTempPath(), sprintf "simko-ckpt-%s-%d" name System.Environment.ProcessId)
    if Directory.Exists d then Directory.Delete(d, true)
    Directory.CreateDirectory d |> ignore
    d

/// A safetensors file from a raw header and data.
let private raw (path: string) (header: string) (data: byte[]) =
    let h = Encoding.UTF8.GetBytes header
    use f = File.Create path
    f.Write(System.BitConverter.GetBytes(int64 h.Length), 0, 8)
    f.Write(h, 0, h.Length)
    f.Write(data, 0, data.Length)

let private expectError (path: string) (fragment: string) =
    Expect.throwsC (fun () -> SafeTensors.Read path |> ignore) (fun e ->
        Expect.isTrue (e :? InvalidDataException) (sprintf "an InvalidDataException, got %s" (e.GetType().Name))
        Expect.stringContains e.Message path "names the file"
        Expect.stringContains e.Message fragment "says what is wrong")

let tests =
    testSequenced <| testList "checkpoints" [
        for kv, tied in [ 4, true; 2, false ] do
            testCase (sprintf "HF folder save then load gives identical parameters and logits (kv %d, tied %b)" kv tied) <| fun () ->
                use _ = torch.NewDisposeScope()
                let m = ModelTests.tiny 20 kv tied
                let dir = Path.Combine(temp "hf", "model")
                HfFolder.Save(m, CharTokenizer("0123456789+-*/():="), dir)
                let back = HfFolder.LoadModel(dir, torch.CPU, torch.ScalarType.Float32)
                for struct (n, p), struct (n2, p2) in Seq.zip (m.NamedParameters()) (back.NamedParameters()) do
                    Expect.equal n n2 "names"
                    Expect.isTrue (p.Equals(p2)) (sprintf "%s bit-identical" n)
                use _ = torch.no_grad()
                let ids = torch.tensor([| 3L; 4L; 5L |]).reshape(1L, 3L)
                let mask = torch.ones_like(ids)
                Expect.isTrue (m.Forward(ids, mask, CausalLM.PositionsFromMask mask).Equals(back.Forward(ids, mask, CausalLM.PositionsFromMask mask))) "logits"
                Expect.equal (HfFolder.LoadTokenizer(dir).VocabSize) 20 "tokenizer"
        testCase "a sharded folder with an index loads" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = ModelTests.tiny 20 2 false
            let dir = temp "sharded"
            File.WriteAllText(Path.Combine(dir, HfFolder.Config), m.Config.ToJson())
            let ps = m.NamedParameters() |> Seq.map (fun struct (n, p) -> n, (p :> torch.Tensor)) |> Array.ofSeq
            let half = ps.Length / 2
            let shard (name: string) (items: (string * torch.Tensor)[]) =
                SafeTensors.Save(Path.Combine(dir, name), readOnlyDict items)
                items |> Array.map (fun (n, _) -> sprintf "\"%s\": \"%s\"" n name)
            let entries = Array.append (shard "model-00001-of-00002.safetensors" ps.[.. half - 1]) (shard "model-00002-of-00002.safetensors" ps.[half ..])
            File.WriteAllText(Path.Combine(dir, HfFolder.Index), sprintf "{\"weight_map\": {%s}}" (String.concat ", " entries))
            let back = HfFolder.LoadModel(dir, torch.CPU, torch.ScalarType.Float32)
            for struct (_, p), struct (_, p2) in Seq.zip (m.NamedParameters()) (back.NamedParameters()) do
                Expect.isTrue (p.Equals(p2)) "identical"
        testCase "a missing or mis-shaped tensor is named with both shapes" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = ModelTests.tiny 20 2 false
            let tensors = m.NamedParameters() |> Seq.map (fun struct (n, p) -> n, (p :> torch.Tensor)) |> dict |> System.Collections.Generic.Dictionary
            tensors.Remove "model.norm.weight" |> ignore
            tensors["lm_head.weight"] <- torch.zeros(3L, 3L)
            Expect.throwsC (fun () -> HfFolder.LoadInto(m, tensors, "test-source")) (fun e ->
                Expect.stringContains e.Message "missing tensor 'model.norm.weight'" "missing"
                Expect.stringContains e.Message "tensor 'lm_head.weight' has shape [3, 3], expected [20, 32]" "mis-shaped")
        testCase "corrupted safetensors files give clear errors" <| fun () ->
            let dir = temp "corrupt"
            let p name = Path.Combine(dir, name)
            File.WriteAllBytes(p "short", [| 1uy; 2uy |])
            expectError (p "short") "too short"
            raw (p "absurd") "{}" [||]
            let bytes = File.ReadAllBytes(p "absurd")
            System.BitConverter.GetBytes(1_000_000_000_000L).CopyTo(bytes, 0)
            File.WriteAllBytes(p "absurd", bytes)
            expectError (p "absurd") "header length"
            raw (p "json") "{not json" [||]
            expectError (p "json") "not valid JSON"
            raw (p "dtype") """{"a": {"dtype": "F7", "shape": [1], "data_offsets": [0, 4]}}""" (Array.zeroCreate 4)
            expectError (p "dtype") "unknown dtype 'F7'"
            raw (p "range") """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}""" (Array.zeroCreate 4)
            expectError (p "range") "outside the data section"
            raw (p "overlap") """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}""" (Array.zeroCreate 12)
            expectError (p "overlap") "overlap"
            raw (p "shape") """{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}""" (Array.zeroCreate 8)
            expectError (p "shape") "needs 12 bytes"
            // truncated: a valid file cut short
            SafeTensors.Save(p "whole", readOnlyDict [ "w", torch.ones(4L, 4L) ])
            let whole = File.ReadAllBytes(p "whole")
            File.WriteAllBytes(p "truncated", whole.[.. whole.Length - 9])
            expectError (p "truncated") "outside the data section"
    ]
