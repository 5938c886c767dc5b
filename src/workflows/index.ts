export { stackCheck } from './stack-check';
export { deployService } from './deploy-service';
