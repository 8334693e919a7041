// Training, its public entry: the two-stage recipe of the built-in model (a VAE, then a text encoder + UNet),
// generic over its data (a `TrainingData` source), with the pieces it is made of. It imports only the
// runtime's public entry (src/index.ts).

export {
  type Adapter,
  type AdapterBase,
  type AdapterMethod,
  type AdapterTrainOptions,
  adapterLoss,
  CustomDiffusionKV,
  LoraFactors,
  trainAdapter,
} from './adapter.js';
export {
  type BPEVocabulary,
  END_OF_TEXT,
  learnBPE,
  START_OF_TEXT,
  tokenizerOf,
  writeTokenizer,
} from './bpe.js';
export { type CheckpointMeta, hasCheckpoint, readCheckpointMeta, type TrainState } from './checkpoint.js';
export type { ObjectWord, TrainingBatch, TrainingData } from './data.js';
export { trainingBatch } from './data.js';
export {
  buildDiT,
  DIT_DATA,
  DIT_DEFAULTS,
  type DiTBase,
  type DiTBatches,
  type DiTConfig,
  type DiTTrainOptions,
  ditSchedulerConfigJson,
  ditTransformerConfigJson,
  encodeDiTText,
  flowMatchingLoss,
  sampleSigmas,
  trainDiT,
} from './dit.js';
export { exportDiTModel } from './dit-export.js';
export { EMA } from './ema.js';
export { exportShapesModel } from './export.js';
export { folderTrainingData, MAX_FOLDER_IMAGES } from './folder-data.js';
export { type LoopOptions, type LoopResult, learningRate, trainLoop } from './loop.js';
export { plotRun } from './plot.js';
export { writeReconstructionGrid } from './preview.js';
export {
  loadTrainedVAE,
  SHAPES_TRAIN_DEFAULTS,
  type ShapesTrainOptions,
  type StageOptions,
  trainDecoder,
  trainTextToImage,
  trainVAE,
  vaeCheckpointDir,
  vocabularyCaptions,
} from './shapes.js';
export {
  buildTextToImage,
  type PredictionTarget,
  TEXT_TO_IMAGE_DEFAULTS,
  type TextToImageConfig,
  type TextToImageLossOptions,
  type TextToImageModels,
  type TimestepBias,
  textToImageLoss,
  trainingNoiseSchedule,
} from './text-to-image.js';
export { buildVAE, initVAE, VAE_DEFAULTS, type VAELoss, type VAETrainConfig, vaeLoss } from './vae.js';
