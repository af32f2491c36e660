/// HF folders sharded the way HF shards them: model-0000i-of-0000N.safetensors plus
/// model.safetensors.index.json (metadata.total_size, weight_map), shards no larger than the limit;
/// a sharded save loads back bit for bit, straight into another dtype, and names missing shards.
module SimKO.Tests.HfFolderShardTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open TorchSharp
open SimKO.Data.Tokenizers
open SimKO.Host.Model
open SimKO.Host.Checkpoints

let private temp name =
    let d = Path.Combine(Path.GetTempPath(), sprintf "simko-shard-%s-%d" name System.Environment.ProcessId)
    if Directory.Exists d then Directory.Delete(d, true)
    d

let private tok () = CharTokenizer("0123456789+-*/():=")

let tests =
    testSequenced <| testList "sharded HF folders" [
        testCase "a forced small shard size gives HF's shards and index, and they load back bit for bit" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = ModelTests.tiny 20 2 false
            let dir = temp "round"
            let limit = 40_000L
            HfFolder.Save(m, tok (), dir, maxShardBytes = limit)
            let shards = Directory.GetFiles(dir, "model-*.safetensors") |> Array.map Path.GetFileName |> Array.sort
            Expect.isGreaterThan shards.Length 2 "several shards"
            Expect.equal shards[0] (sprintf "model-00001-of-%05d.safetensors" shards.Length) "HF's names"
            Expect.isFalse (File.Exists(Path.Combine(dir, HfFolder.Weights))) "no single file"
            let index = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, HfFolder.Index)))
            let named = m.NamedParameters()
            let total = named |> Seq.sumBy (fun struct (_, p) -> p.numel() * 4L)
            Expect.equal (index["metadata"].["total_size"].GetValue<int64>()) total "total_size = bytes of all tensors"
            let map = index.["weight_map"].AsObject()
            Expect.equal map.Count named.Count "every parameter in weight_map"
            for struct (name, p) in named do
                let file = map[name].GetValue<string>()
                let struct (entries, _, _) = SafeTensors.ReadHeader(Path.Combine(dir, file))
                Expect.isTrue (entries |> Seq.exists (fun e -> e.Name = name)) (sprintf "%s is in %s" name file)
            for s in shards do
                let struct (entries, _, _) = SafeTensors.ReadHeader(Path.Combine(dir, s))
                let bytes = entries |> Seq.sumBy (fun e -> e.End - e.Begin)
                Expect.isTrue (bytes <= limit || entries.Count = 1) (sprintf "%s holds %d bytes (limit %d, or one larger tensor)" s bytes limit)
            let back = HfFolder.LoadModel(dir, torch.CPU, torch.ScalarType.Float32)
            for struct (n, p), struct (_, p2) in Seq.zip named (back.NamedParameters()) do
                Expect.isTrue (p.Equals(p2)) (sprintf "%s bit-identical" n)
        testCase "a bf16 export says bfloat16 in config.json and loads into bf16 parameters" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = ModelTests.tiny 20 2 true
            let dir = temp "bf16"
            HfFolder.Save(m, tok (), dir, dtype = torch.ScalarType.BFloat16)
            let cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, HfFolder.Config)))
            Expect.equal (cfg["torch_dtype"].GetValue<string>()) "bfloat16" "torch_dtype"
            let struct (entries, _, _) = SafeTensors.ReadHeader(Path.Combine(dir, HfFolder.Weights))
            Expect.isTrue (entries |> Seq.forall (fun e -> e.DType = "BF16")) "stored as BF16"
            let back = HfFolder.LoadModel(dir, torch.CPU, torch.ScalarType.BFloat16)
            for struct (n, p), struct (_, p2) in Seq.zip (m.NamedParameters()) (back.NamedParameters()) do
                Expect.equal p2.dtype torch.ScalarType.BFloat16 "bf16 parameter"
                Expect.isTrue (p.to_type(torch.ScalarType.BFloat16).Equals(p2)) (sprintf "%s equals the bf16 rounding" n)
        testCase "a shard named by the index but absent is named in the error" <| fun () ->
            use _ = torch.NewDisposeScope()
            let m = ModelTests.tiny 20 2 false
            let dir = temp "missing"
            HfFolder.Save(m, tok (), dir, maxShardBytes = 40_000L)
            let victim = Directory.GetFiles(dir, "model-*.safetensors") |> Array.sort |> Array.last
            File.Delete victim
            Expect.throwsC (fun () -> HfFolder.LoadModel(dir, torch.CPU, torch.ScalarType.Float32) |> ignore) (fun e ->
                Expect.stringContains e.Message (Path.GetFileName victim) "names the missing shard")
        testCase "sharding keeps order, respects the limit and gives an oversized tensor its own shard" <| fun () ->
            let shards = HfFolder.Shard([| struct ("a", 3L); struct ("b", 3L); struct ("c", 9L); struct ("d", 1L); struct ("e", 2L) |], 6L)
            Expect.equal [ for s in shards -> [ for struct (n, _) in s -> n ] ] [ [ "a"; "b" ]; [ "c" ]; [ "d"; "e" ] ] "shards"
    ]
