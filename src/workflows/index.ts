export { stackCheck } from './stack-check';
export { deployService } from './deploy-service';
export { rollbackService } from './rollback-service';
export { restoreDrill } from './restore-drill';
export { planPreview } from './plan-preview';
export { backupService } from './backup-service';
export { pitrDrill } from './pitr-drill';
