export { stackCheck } from './stack-check';
