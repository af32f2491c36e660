/// HF folders: save → load is exact (single file and sharded), config.json round trips, and
/// mismatched or damaged checkpoints are reported by name.
module SimKO.Host.Tests.CheckpointTests

open System
open System.IO
open System.Collections.Generic
open Expecto
open TorchSharp
open SimKO.Data.Tokenizers
open SimKO.Host.Model
open SimKO.Host.Checkpoints
open SimKO.Host.Tests.Helpers

let private charTok = CharTokenizer "abcdefghijklmnopqrstuvwxyz0123456789 +-=?"

let private expectSameParameters (a: CausalLM) (b: CausalLM) =
    let pa = parameters a |> dict
    let pb = parameters b |> dict
    Expect.equal (set pb.Keys) (set pa.Keys) "same parameter names"
    for KeyValue(n, t) in pa do
        Expect.equal pb.[n].dtype t.dtype (sprintf "%s dtype" n)
        Expect.isTrue (t.Equals pb.[n]) (sprintf "%s bit-identical" n)

let private logitsOf (m: CausalLM) =
    use _ng = torch.no_grad ()
    use ids = idsTensor (randomIds 8 2 7 1 44)
    m.forward(ids, torch.ones([| 2L; 7L |]))

/// Qwen2.5-0.5B's published config.json (architecture fields).
let qwen25Config = """{
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
  "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
  "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
  "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936 }"""

/// Llama-3.2-1B's published config.json (architecture fields).
let llama32Config = """{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0",
  "use_cache": true, "vocab_size": 128256 }"""

let tests =
    testList "checkpoints" [
        testList "save then load gives bit-identical parameters and identical logits" [
            for name, cfg in [ "qwen2 tied + biases", qwenTiny 44; "llama untied", llamaTiny 44 ] ->
                test name {
                    use dir = new TempDir()
                    use m = CausalLM.CreateRandom(cfg, 21L)
                    let folder = dir.File "model"
                    HfFolder.Save(m, charTok, folder)
                    for f in [ "config.json"; "model.safetensors"; "generation_config.json"; CharTokenizer.FileName ] do
                        Expect.isTrue (File.Exists(Path.Combine(folder, f))) (sprintf "%s written" f)
                    use loaded = HfFolder.Load(folder, torch.CPU, torch.ScalarType.Float32)
                    expectSameParameters m loaded.Model
                    use a = logitsOf m
                    use b = logitsOf loaded.Model
                    Expect.isTrue (a.Equals b) "identical logits"
                    Expect.equal loaded.Config.Architecture cfg.Architecture "architecture"
                    Expect.equal loaded.Config.TieWordEmbeddings cfg.TieWordEmbeddings "tied"
                    Expect.equal loaded.Config.RopeScaling cfg.RopeScaling "rope scaling"
                    Expect.equal (loaded.Tokenizer :?> CharTokenizer).Alphabet charTok.Alphabet "tokenizer"
                }
        ]
        test "the sharded layout with an index loads the same parameters" {
            use dir = new TempDir()
            use m = CausalLM.CreateRandom(llamaTiny 44, 22L)
            let folder = dir.File "sharded"
            HfFolder.Save(m, charTok, folder, HfSaveOptions(MaxShardBytes = 20_000L))
            let shards = Directory.GetFiles(folder, "model-*-of-*.safetensors")
            Expect.isGreaterThan shards.Length 2 "several shards"
            Expect.isTrue (File.Exists(Path.Combine(folder, Checkpoint.IndexFile))) "index written"
            Expect.isFalse (File.Exists(Path.Combine(folder, Checkpoint.SingleFile))) "no single file"
            use loaded = HfFolder.LoadModel(folder, torch.CPU, torch.ScalarType.Float32)
            expectSameParameters m loaded
        }
        test "saving in bfloat16 stores BF16 and loads the bf16-rounded values" {
            use dir = new TempDir()
            use m = CausalLM.CreateRandom(qwenTiny 44, 23L)
            let folder = dir.File "bf16"
            HfFolder.Save(m, charTok, folder, HfSaveOptions(DType = Nullable torch.ScalarType.BFloat16))
            use f = SafeTensorsFile.Open(Path.Combine(folder, "model.safetensors"))
            Expect.allEqual (f.Entries |> Seq.map (fun e -> e.DType)) "BF16" "every tensor BF16"
            Expect.stringContains (File.ReadAllText(Path.Combine(folder, "config.json"))) "\"torch_dtype\": \"bfloat16\"" "config says bfloat16"
            use loaded = HfFolder.LoadModel(folder, torch.CPU, torch.ScalarType.Float32)
            let src = parameters m |> dict
            for n, p in parameters loaded do
                use want = src.[n].to_type(torch.ScalarType.BFloat16).to_type(torch.ScalarType.Float32)
                Expect.isTrue (p.Equals want) (sprintf "%s is the bf16 rounding" n)
        }
        test "saving over an existing folder replaces it and leaves no temporary folder" {
            use dir = new TempDir()
            let folder = dir.File "out"
            use m1 = CausalLM.CreateRandom(qwenTiny 44, 1L)
            use m2 = CausalLM.CreateRandom(qwenTiny 44, 2L)
            HfFolder.Save(m1, charTok, folder)
            File.WriteAllText(Path.Combine(folder, "stale.txt"), "old")
            HfFolder.Save(m2, charTok, folder)
            Expect.isFalse (File.Exists(Path.Combine(folder, "stale.txt"))) "old contents gone"
            Expect.sequenceEqual (Directory.GetDirectories dir.Path |> Array.map Path.GetFileName) [| "out" |] "only the folder"
            use loaded = HfFolder.LoadModel(folder, torch.CPU, torch.ScalarType.Float32)
            expectSameParameters m2 loaded
        }
        test "a checkpoint of another shape lists each tensor with expected and found shapes" {
            use dir = new TempDir()
            use m = CausalLM.CreateRandom(qwenTiny 44, 3L)
            let path = dir.File "model.safetensors"
            let sd = m.state_dict()
            let d = Dictionary<string, torch.Tensor>(sd)
            d.Remove "model.norm.weight" |> ignore
            d.["model.layers.0.mlp.up_proj.weight"] <- torch.zeros([| 7L; 32L |])
            d.["model.extra.weight"] <- torch.zeros([| 2L |])
            SafeTensors.Save(path, d)
            use ck = Checkpoint.Open path
            use target = CausalLM.CreateEmpty(qwenTiny 44, torch.CPU, torch.ScalarType.Float32)
            let e = throws<CheckpointMismatchException> (fun () -> ck.LoadInto target) "mismatch"
            Expect.stringContains e.Message "missing from the checkpoint (1)" "missing section"
            Expect.stringContains e.Message "model.norm.weight (expected [32])" "missing tensor with its shape"
            Expect.stringContains e.Message "model.layers.0.mlp.up_proj.weight: expected [80, 32], found [7, 32]" "shapes"
            Expect.stringContains e.Message "model.extra.weight [2]" "unexpected tensor"
            Expect.stringContains e.Message path "names the file"
        }
        test "an index that lists a missing shard or a tensor its shard lacks is rejected" {
            use dir = new TempDir()
            use m = CausalLM.CreateRandom(qwenTiny 44, 4L)
            let folder = dir.File "sharded"
            HfFolder.Save(m, charTok, folder, HfSaveOptions(MaxShardBytes = 20_000L))
            let index = Path.Combine(folder, Checkpoint.IndexFile)
            let text = File.ReadAllText index
            File.WriteAllText(index, text.Replace("\"model.norm.weight\": \"model-", "\"model.norm.weight\": \"gone-"))
            let e = throws<SafeTensorsFormatException> (fun () -> (Checkpoint.Open folder).Dispose()) "missing shard"
            Expect.stringContains e.Message "gone-" "names the shard"
            File.WriteAllText(index, text.Replace("\"model.norm.weight\"", "\"model.norm.weight2\""))
            let e2 = throws<SafeTensorsFormatException> (fun () -> (Checkpoint.Open folder).Dispose()) "tensor not in shard"
            Expect.stringContains e2.Message "model.norm.weight" "names the tensor"
            File.WriteAllText(index, text.Replace("\"model.norm.weight\": \"model-", "\"model.norm.weight\": \"../model-"))
            throws<SafeTensorsFormatException> (fun () -> (Checkpoint.Open folder).Dispose()) "path outside the folder" |> ignore
        }
        test "Qwen2.5 and Llama-3.2 config.json files parse to the right architecture" {
            let q = ModelConfig.FromJson(qwen25Config, "qwen2.5-0.5b/config.json")
            Expect.equal q.Architecture Architecture.Qwen2 "qwen2"
            Expect.equal (q.HiddenSize, q.NumAttentionHeads, q.NumKeyValueHeads, q.HeadDim) (896, 14, 2, 64) "heads"
            Expect.isTrue (q.QkvBias && not q.OutputBias && q.TieWordEmbeddings) "biases, tied"
            Expect.equal q.RopeTheta 1000000.0 "theta"
            let l = ModelConfig.FromJson(llama32Config, "llama-3.2-1b/config.json")
            Expect.equal l.Architecture Architecture.Llama "llama"
            Expect.equal l.RopeScaling (RopeScaling(32.0, 1.0, 4.0, 8192)) "llama3 scaling"
            Expect.sequenceEqual l.EosTokenIds [| 128001; 128008; 128009 |] "eos list"
            Expect.isFalse l.QkvBias "no bias"
            // Written back: our fields plus the untouched ones.
            let back = ModelConfig.FromJson(l.ToJson "float32", "written")
            Expect.equal (back.ToJson "float32") (l.ToJson "float32") "writing is stable"
            Expect.equal (back.HiddenSize, back.HeadDim, back.RopeScaling, back.TieWordEmbeddings) (l.HiddenSize, l.HeadDim, l.RopeScaling, l.TieWordEmbeddings) "round trip"
            Expect.sequenceEqual back.EosTokenIds l.EosTokenIds "eos round trip"
            Expect.stringContains (l.ToJson "float32") "pretraining_tp" "unknown fields kept"
        }
        test "unsupported configs say what is supported" {
            let e = throws<InvalidDataException> (fun () -> ModelConfig.FromJson("""{"model_type":"gpt2"}""", "c.json") |> ignore) "gpt2"
            Expect.stringContains e.Message "qwen2, llama" "lists families"
            let e2 = throws<InvalidDataException> (fun () ->
                        ModelConfig.FromJson(qwen25Config.Replace("\"hidden_size\": 896,", ""), "c.json") |> ignore) "missing field"
            Expect.stringContains e2.Message "missing field 'hidden_size'" "names the field"
            let e3 = throws<InvalidDataException> (fun () ->
                        ModelConfig.FromJson(qwen25Config.Replace("\"rope_theta\": 1000000.0,", "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0},"), "c.json") |> ignore) "yarn"
            Expect.stringContains e3.Message "yarn" "names the rope type"
        }
    ]
