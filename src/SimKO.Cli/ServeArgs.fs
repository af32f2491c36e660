/// `simko serve`: the continuous-batching engine over the OpenAI-compatible HTTP subset of vLLM/SGLang.
module SimKO.Cli.ServeArgs

open Argu

type ServeArgs =
    | [<Mandatory; AltCommandLine("-m")>] Model of folder: string
    | Host of address: string
    | Port of port: int
    | Api_Key of key: string
    | Max_Batch of rows: int
    | Max_Queue of sequences: int
    | Device of device: string
    | DType of dtype: string
    | Served_Model_Name of name: string
    | Adapter of folder: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Model _ -> "HF folder to serve (config.json, safetensors, tokenizer files)."
            | Host _ -> "address to bind (default 127.0.0.1, loopback only; 0.0.0.0 exposes it to the network)."
            | Port _ -> "TCP port (default 8000; 0 picks a free one)."
            | Api_Key _ -> "require 'Authorization: Bearer KEY' on every route but /health (default: none)."
            | Max_Batch _ -> "most sequences decoded together (KV-cache slots; default 64)."
            | Max_Queue _ -> "most sequences waiting for a slot before requests get 429 (default 1024)."
            | Device _ -> "cpu (default), cuda or cuda:N."
            | DType _ -> "float32 (default) or bfloat16 (CUDA only)."
            | Served_Model_Name _ -> "the model id of /v1/models and the 'model' field (default: the folder's name)."
            | Adapter _ -> "a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) applied on the base folder."

type ServeOptions =
    { Model: string; Host: string; Port: int; ApiKey: string option; MaxBatch: int; MaxQueue: int
      Device: RunSpec.Device; DType: RunSpec.DType; ServedModelName: string option
      /// a PEFT adapter on the base folder (issue 22).
      Adapter: string option }

/// The options, or every problem with them at once.
let toOptions (r: ParseResults<ServeArgs>) : Result<ServeOptions, string list> =
    let problems = ResizeArray<string>()
    let ok (x: Result<'T, string>) = match x with Ok v -> Some v | Error e -> problems.Add e; None
    let device = RunSpec.parseDevice (r.GetResult(Device, defaultValue = "cpu")) |> Result.mapError (sprintf "--device: %s") |> ok
    let dtype =
        RunSpec.parseName "dtype" RunSpec.dtypeName [ RunSpec.Float32; RunSpec.BFloat16 ] (r.GetResult(DType, defaultValue = "float32"))
        |> Result.mapError (sprintf "--dtype: %s") |> ok
    let o =
        { Model = r.GetResult Model
          Host = r.GetResult(Host, defaultValue = "127.0.0.1")
          Port = r.GetResult(Port, defaultValue = 8000)
          ApiKey = r.TryGetResult Api_Key
          MaxBatch = r.GetResult(Max_Batch, defaultValue = 64)
          MaxQueue = r.GetResult(Max_Queue, defaultValue = 1024)
          Device = defaultArg device RunSpec.Cpu
          DType = defaultArg dtype RunSpec.Float32
          ServedModelName = r.TryGetResult Served_Model_Name
          Adapter = r.TryGetResult Adapter }
    if o.Port < 0 || o.Port > 65535 then problems.Add(sprintf "--port must be in [0, 65535], got %d" o.Port)
    if o.MaxBatch < 1 then problems.Add(sprintf "--max-batch must be >= 1, got %d" o.MaxBatch)
    if o.MaxQueue < 0 then problems.Add(sprintf "--max-queue must be >= 0, got %d" o.MaxQueue)
    if problems.Count = 0 then Ok o else Error(List.ofSeq problems)
